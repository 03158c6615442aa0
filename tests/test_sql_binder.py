"""shared.sql: `:name` placeholders compiled to asyncpg's `$n`, and the arguments bound by name."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest

from shared.sql import Statement, compiled


def test_names_become_numbers_in_order_of_first_use() -> None:
    statement = Statement("SELECT :b, :a, :b")
    assert statement.sql == "SELECT $1, $2, $1"
    assert statement.names == ("b", "a")
    assert statement(a=1, b=2) == (2, 1)


def test_casts_are_not_placeholders() -> None:
    statement = Statement("SELECT :limit::integer, x::text, :flag::boolean IS NULL")
    assert statement.sql == "SELECT $1::integer, x::text, $2::boolean IS NULL"
    assert statement.names == ("limit", "flag")


@pytest.mark.parametrize("text", [
    "SELECT ':not_a_name'",
    "SELECT E'it''s :not_a_name'",
    "SELECT 'a'':not_a_name'",
    'SELECT 1 AS ":not_a_name"',
    "SELECT 1 -- a comment: :not_a_name\n",
    "SELECT 1 /* :not_a_name */",
    "SELECT $$ :not_a_name $$",
    "SELECT $tag$ :not_a_name $x$ $tag$",
    "SELECT '^[0-9a-f-]{36}$'",
    "SELECT a[1:2] FROM t",
    "SELECT '{}'::jsonb",
])
def test_literals_comments_and_quoted_identifiers_are_left_alone(text: str) -> None:
    statement = Statement(text)
    assert statement.sql == text
    assert statement.names == ()


def test_placeholders_beside_literals_and_comments_are_bound() -> None:
    statement = Statement("SELECT ':x', :y -- :z\n, :w")
    assert statement.sql == "SELECT ':x', $1 -- :z\n, $2"
    assert statement.names == ("y", "w")


def test_a_missing_name_fails_loudly() -> None:
    with pytest.raises(TypeError, match=r"missing \['b'\]"):
        Statement("SELECT :a, :b")(a=1)


def test_an_unexpected_name_fails_loudly() -> None:
    with pytest.raises(TypeError, match=r"unexpected \['c'\]"):
        Statement("SELECT :a")(a=1, c=3)


def test_numbered_placeholders_are_refused() -> None:
    with pytest.raises(ValueError, match="by name"):
        Statement("SELECT $1")


def test_compiled_texts_are_compiled_once() -> None:
    assert compiled("SELECT :a") is compiled("SELECT :a")


@pytest.mark.parametrize("cache", [100, 0])
def test_a_named_statement_runs_prepared_and_unprepared(database_url: str, cache: int) -> None:
    """With the prepared-statement cache, and without it (PgBouncer in transaction mode)."""
    statement = Statement("SELECT :a::integer + :b::integer AS sum, ':a' AS text, :a::integer IS NULL AS missing")

    async def run() -> list[tuple[int, str, bool]]:
        connection = await asyncpg.connect(database_url, statement_cache_size=cache)
        try:
            answers = []
            for a, b in ((1, 2), (40, 2)):
                row = await connection.fetchrow(statement.sql, *statement(b=b, a=a))
                assert row is not None
                answers.append((row["sum"], row["text"], row["missing"]))
            return answers
        finally:
            await connection.close()

    assert asyncio.run(run()) == [(3, ":a", False), (42, ":a", False)]
