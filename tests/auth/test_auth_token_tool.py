"""python -m tools.token: prints one token the API accepts, shaped by its options."""

from __future__ import annotations

import uuid
from pathlib import Path

import jwt
import pytest

from shared.auth import tokens
from tests.auth.auth_kit import run
from tools import token as token_tool
from tools.authority import DevAuthority, SigningKey


@pytest.fixture
def key_dir(tmp_path: Path, issuer: DevAuthority, monkeypatch: pytest.MonkeyPatch) -> Path:
    # The issuer publishes the key the tool signs with; local.settings.json is not consulted.
    monkeypatch.setattr(token_tool, "load_local_settings", lambda: None)
    issuer.keys[:] = [SigningKey.load_or_create(tmp_path)]
    return tmp_path


def mint(capsys: pytest.CaptureFixture[str], key_dir: Path, *options: str) -> str:
    assert token_tool.main([*options, "--key-dir", str(key_dir)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 1
    return lines[0]


def test_the_printed_token_is_accepted_with_the_options_given(
    capsys: pytest.CaptureFixture[str], key_dir: Path
) -> None:
    printed = mint(capsys, key_dir, "--name", "Ada Lovelace", "--admin", "--scope", "access_as_user",
                   "--scope", "Registry.Read", "--lifetime", "120")
    principal = run(tokens.validate(printed))
    assert (principal.display_name, principal.email, principal.roles, principal.scopes) == (
        "Ada Lovelace", "ada.lovelace@example.com", ("Registry.Admin",), ("access_as_user", "Registry.Read")
    )
    claims = jwt.decode(printed, options={"verify_signature": False})
    assert claims["exp"] - claims["iat"] == 120


def test_the_oid_is_stable_per_name_unless_given(capsys: pytest.CaptureFixture[str], key_dir: Path) -> None:
    first = run(tokens.validate(mint(capsys, key_dir, "--name", "Grace")))
    second = run(tokens.validate(mint(capsys, key_dir, "--name", "Grace", "--lifetime", "60")))
    assert first.oid == second.oid
    chosen = str(uuid.uuid4())
    assert run(tokens.validate(mint(capsys, key_dir, "--oid", chosen, "--email", "g@example.com"))).oid == chosen


def test_every_option_has_help(capsys: pytest.CaptureFixture[str]) -> None:
    options = {option: action.help for action in token_tool.build_parser()._actions for option in action.option_strings}
    assert {"--name", "--email", "--admin", "--scope", "--lifetime", "--oid", "--key-dir"} <= set(options)
    assert all(options.values()), options
    with pytest.raises(SystemExit) as exited:
        token_tool.main(["--help"])
    assert exited.value.code == 0
    assert "--lifetime SECONDS" in capsys.readouterr().out


@pytest.mark.parametrize("options", [["--lifetime", "0"], ["--lifetime", "soon"], ["--oid", "ada"]])
def test_bad_values_are_refused(capsys: pytest.CaptureFixture[str], options: list[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        token_tool.main(options)
    assert exited.value.code == 2
