"""`If-None-Match` as RFC 9110 section 13.1.2 reads it, in the one helper every cached GET uses."""

from __future__ import annotations

import azure.functions as func
import pytest

from shared.http import client_holds

TAG = '"3f2b8c1e9a4d"'


def request(if_none_match: str | None) -> func.HttpRequest:
    headers = {} if if_none_match is None else {"If-None-Match": if_none_match}
    return func.HttpRequest("GET", "http://localhost/api/v0.1/servers", headers=headers, body=b"")


@pytest.mark.parametrize("held", [
    TAG,
    f"W/{TAG}",  # the weak comparison ignores W/ on the client's tag
    f'"other", {TAG}',
    f'W/"other",W/{TAG}',
    f'  {TAG}  ',
    "*",  # any current representation
    ' * ',
])
def test_a_held_tag_or_star_is_not_modified(held: str) -> None:
    assert client_holds(request(held), TAG)


@pytest.mark.parametrize("held", [None, "", '"other"', "3f2b8c1e9a4d", f'"{TAG}"', f"{TAG[:-1]}", '"3f2b8c1e9a4"',
                                  'W/"other", "*"'])
def test_anything_else_is_modified(held: str | None) -> None:
    assert not client_holds(request(held), TAG)


def test_a_weak_tag_of_ours_matches_its_strong_form_too() -> None:
    assert client_holds(request(TAG), f"W/{TAG}")
