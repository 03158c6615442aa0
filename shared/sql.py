"""Named parameters for asyncpg: a statement is written with `:name` placeholders and sent as `$n`.

asyncpg (and PostgreSQL's extended protocol) numbers parameters; a reader of a statement with
twenty of them counts dollars. A `Statement` is compiled once, from text such as

    SELECT * FROM registrations WHERE registration_id = :registration_id AND :is_admin::boolean

into the `$n` text asyncpg receives (`.sql`) and the names in the order of their numbers
(`.names`); a name used twice is one parameter. Calling the statement with keyword values gives
the positional arguments, and a missing or an unexpected name is a `TypeError` there and then,
never a value bound to the wrong slot.

What is not a placeholder: `::type` casts, anything inside a string literal (`'...'`, `E'...'`,
dollar quotes), a quoted identifier or a comment, and a colon not followed by a name (`a[1:2]`).
The compiled text is fixed per statement, so asyncpg's prepared-statement cache keys on it as
before, and with `statement_cache_size=0` (PgBouncer) nothing changes either.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from functools import lru_cache
from typing import Any

# One token of SQL that may hold a colon which is not a placeholder, or a placeholder. Order
# matters: a cast (`::`) is taken before a single colon can be read as a placeholder.
_TOKENS = re.compile(
    r"""
      (?P<comment>--[^\n]*|/\*.*?\*/)
    | (?P<literal>[eE]?'(?:[^']|'')*')
    | (?P<dollar>\$(?P<tag>[A-Za-z_][A-Za-z0-9_]*|)\$.*?\$(?P=tag)\$)
    | (?P<quoted>"(?:[^"]|"")*")
    | (?P<cast>::)
    | :(?P<name>[A-Za-z_][A-Za-z0-9_]*)
    | (?P<numbered>\$[0-9]+)
    """,
    re.VERBOSE | re.DOTALL,
)


class Statement:
    """A SQL statement with named parameters, compiled to asyncpg's numbered ones."""

    __slots__ = ("names", "sql", "text")

    def __init__(self, text: str) -> None:
        self.text = text
        names: list[str] = []
        numbers: dict[str, int] = {}

        def number(match: re.Match[str]) -> str:
            if match.group("numbered"):
                raise ValueError(f"a statement binds by name, not by number: {match.group('numbered')!r}")
            name = match.group("name")
            if name is None:
                return match.group(0)
            if name not in numbers:
                names.append(name)
                numbers[name] = len(names)
            return f"${numbers[name]}"

        self.sql = _TOKENS.sub(number, text)
        self.names: tuple[str, ...] = tuple(names)

    def __call__(self, **values: Any) -> tuple[Any, ...]:
        """The positional arguments of `.sql`, from exactly the statement's names."""
        return self.arguments(values)

    def arguments(self, values: Mapping[str, Any]) -> tuple[Any, ...]:
        if len(values) != len(self.names) or any(name not in values for name in self.names):
            missing = [name for name in self.names if name not in values]
            extra = sorted(set(values) - set(self.names))
            raise TypeError(f"statement parameters do not match: missing {missing}, unexpected {extra}")
        return tuple(values[name] for name in self.names)

    def __repr__(self) -> str:
        return f"Statement(names={self.names!r})"


@lru_cache(maxsize=512)
def compiled(text: str) -> Statement:
    """The statement of a text assembled per request from fixed fragments (a list's filters): each
    shape is compiled once; the shapes are few, since only fixed fragments vary."""
    return Statement(text)
