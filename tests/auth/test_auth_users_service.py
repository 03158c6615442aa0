"""services.users against a real PostgreSQL: one statement per change, none while nothing changed."""

from __future__ import annotations

import asyncio
import dataclasses
import uuid
from collections.abc import Awaitable, Callable, Iterator
from typing import Any, TypeVar

import asyncpg
import pytest

from shared.auth.principal import Principal
from shared.config import DatabaseSettings
from shared.db import Database
from shared.services import users
from tests.support import Sql

T = TypeVar("T")


class CountingDatabase(Database):
    """The real pool, counting the statements it is asked to run."""

    def __init__(self, url: str) -> None:
        super().__init__(lambda: DatabaseSettings.from_env({"DATABASE_URL": url}))
        self.statements = 0

    async def fetchrow(self, query: str, *args: Any) -> asyncpg.Record | None:
        self.statements += 1
        return await super().fetchrow(query, *args)


Scenario = Callable[[CountingDatabase], Awaitable[T]]


@pytest.fixture
def within(database_url: str) -> Iterator[Callable[[Scenario[Any]], Any]]:
    """Run one scenario on a fresh event loop with its own pool, closed at the end."""
    users.reset()

    def run(scenario: Scenario[T]) -> T:
        async def main() -> T:
            db = CountingDatabase(database_url)
            try:
                return await scenario(db)
            finally:
                await db.close()

        return asyncio.run(main())

    yield run
    users.reset()


def person(**changes: Any) -> Principal:
    base = Principal(oid=str(uuid.uuid4()), tenant_id=str(uuid.uuid4()), email="ada@example.com",
                     display_name="Ada Lovelace", roles=(), groups=(), scopes=("access_as_user",), is_app=False,
                     has_group_overage=False)
    return dataclasses.replace(base, **changes)


def test_the_first_sign_in_creates_the_row(within: Callable[[Scenario[Any]], Any], sql: Sql) -> None:
    ada = person()

    async def scenario(db: CountingDatabase) -> tuple[users.UserRow, bool]:
        return await users.resolve(db=db, principal=ada, is_admin=True)

    row, created = within(scenario)
    assert created is True
    assert (row.entra_id, row.email, row.display_name, row.is_admin) == (ada.oid, ada.email, "Ada Lovelace", True)
    stored = sql.fetchrow("SELECT user_id, is_admin FROM users WHERE entra_id = $1", ada.oid)
    assert stored is not None
    assert (stored["user_id"], stored["is_admin"]) == (row.user_id, True)


def test_a_repeat_request_runs_no_statement(within: Callable[[Scenario[Any]], Any]) -> None:
    ada = person()

    async def scenario(db: CountingDatabase) -> list[bool]:
        outcomes = [(await users.resolve(db=db, principal=ada, is_admin=False))[1] for _ in range(50)]
        assert db.statements == 1
        return outcomes

    assert within(scenario) == [True] + [False] * 49


def test_an_unchanged_row_is_not_written(within: Callable[[Scenario[Any]], Any], sql: Sql) -> None:
    ada = person()

    async def sign_in(db: CountingDatabase) -> tuple[users.UserRow, bool]:
        return await users.resolve(db=db, principal=ada, is_admin=False)

    first, _ = within(sign_in)
    version = sql.fetchval("SELECT xmin::text FROM users WHERE entra_id = $1", ada.oid)
    users.reset()
    again, created = within(sign_in)
    assert (again, created) == (first, False)
    assert sql.fetchval("SELECT xmin::text FROM users WHERE entra_id = $1", ada.oid) == version


@pytest.mark.parametrize(
    "change",
    [{"display_name": "Ada King"}, {"email": "countess@example.com"}, {"email": None}],
)
def test_a_changed_token_updates_the_row(within: Callable[[Scenario[Any]], Any], change: dict[str, Any]) -> None:
    ada = person()
    renamed = dataclasses.replace(ada, **change)

    async def scenario(db: CountingDatabase) -> tuple[users.UserRow, users.UserRow, bool]:
        first, _ = await users.resolve(db=db, principal=ada, is_admin=False)
        second, created = await users.resolve(db=db, principal=renamed, is_admin=False)
        assert db.statements == 2
        return first, second, created

    first, second, created = within(scenario)
    assert created is False
    assert second.user_id == first.user_id
    assert (second.email, second.display_name) == (renamed.email, renamed.display_name)
    assert second.updated_at > first.updated_at


def test_is_admin_follows_the_token_both_ways(within: Callable[[Scenario[Any]], Any], sql: Sql) -> None:
    ada = person()

    async def scenario(db: CountingDatabase) -> list[bool]:
        flags = []
        for is_admin in (False, True, True, False):
            row, _ = await users.resolve(db=db, principal=ada, is_admin=is_admin)
            flags.append(row.is_admin)
        assert db.statements == 3
        return flags

    assert within(scenario) == [False, True, True, False]
    assert sql.fetchval("SELECT is_admin FROM users WHERE entra_id = $1", ada.oid) is False


def test_concurrent_first_sign_ins_create_one_row(within: Callable[[Scenario[Any]], Any], sql: Sql) -> None:
    ada = person()

    async def scenario(db: CountingDatabase) -> list[tuple[users.UserRow, bool]]:
        return await asyncio.gather(*(users.resolve(db=db, principal=ada, is_admin=False) for _ in range(12)))

    outcomes = within(scenario)
    assert sum(created for _, created in outcomes) == 1
    assert len({row.user_id for row, _ in outcomes}) == 1
    assert sql.fetchval("SELECT count(*) FROM users WHERE entra_id = $1", ada.oid) == 1


def test_values_the_table_cannot_hold_are_made_to_fit(within: Callable[[Scenario[Any]], Any]) -> None:
    odd = person(display_name="A\x00" + "n" * 600, email="x" * 400 + "@example.com")

    async def scenario(db: CountingDatabase) -> users.UserRow:
        row, _ = await users.resolve(db=db, principal=odd, is_admin=False)
        return row

    row = within(scenario)
    assert (row.display_name, row.email) == ("A" + "n" * 511, None)


def test_get_user_finds_by_id(within: Callable[[Scenario[Any]], Any]) -> None:
    ada = person()

    async def scenario(db: CountingDatabase) -> tuple[users.UserRow, users.UserRow | None, users.UserRow | None]:
        row, _ = await users.resolve(db=db, principal=ada, is_admin=False)
        return row, await users.get_user(db=db, user_id=row.user_id), await users.get_user(db=db, user_id=uuid.uuid4())

    row, found, missing = within(scenario)
    assert (found, missing) == (row, None)
