"""TtlCache: the bounded, expiring cache behind validated tokens, Graph answers and user rows."""

from __future__ import annotations

from shared.auth import tokens
from shared.auth.cache import TtlCache
from tests.auth.auth_kit import FakeClock


def test_entries_expire_after_their_ttl() -> None:
    clock = FakeClock()
    cache: TtlCache[str, int] = TtlCache(10, clock)
    cache.put("a", 1, 5)
    clock.advance(4.9)
    assert cache.get("a") == 1
    clock.advance(0.1)
    assert cache.get("a") is None
    assert len(cache) == 0


def test_the_least_recently_used_entry_leaves_when_full() -> None:
    cache: TtlCache[str, int] = TtlCache(3, FakeClock())
    for number, key in enumerate("abc"):
        cache.put(key, number, 60)
    assert cache.get("a") == 0
    cache.put("d", 3, 60)
    assert [cache.get(key) for key in "abcd"] == [0, None, 2, 3]
    assert len(cache) == 3


def test_nothing_is_stored_without_time_to_live() -> None:
    cache: TtlCache[str, int] = TtlCache(3, FakeClock())
    cache.put("expired", 1, 0)
    cache.put("past", 1, -10)
    assert len(cache) == 0


def test_the_token_cache_is_bounded() -> None:
    assert tokens._validated.maxsize == 10_000
