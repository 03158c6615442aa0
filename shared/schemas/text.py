"""The text rules of a registration body: characters that may not be shown to a reviewer or a
client, NFKC for names, and ASCII e-mail contacts.

A right-to-left override or a zero-width character makes one name render as another, so a
reviewer approves what they did not read; such characters are refused, never stripped, so the
submitter sees what was wrong. Every refusal is a `PydanticCustomError` whose type names the rule.
"""

from __future__ import annotations

import re
import unicodedata

from pydantic_core import PydanticCustomError

from shared.schemas.common import has_control_characters

# Format (bidi controls, zero-width characters), private-use, and line/paragraph separators.
_INVISIBLE_CATEGORIES = frozenset({"Cf", "Co", "Zl", "Zp"})
_EMAIL = re.compile(
    r"^[A-Za-z0-9!#$%&'*+/=?^_`{|}~.-]{1,64}@"
    r"(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+(?:[A-Za-z]{2,63}|xn--[A-Za-z0-9-]{1,59})$"
)


def _invisible(value: str) -> str | None:
    for character in value:
        if unicodedata.category(character) in _INVISIBLE_CATEGORIES:
            return f"U+{ord(character):04X}"
    return None


def check_text(value: str, *, multiline: bool = False) -> str:
    """`value` unchanged, or a refusal for control, format, private-use or separator characters."""
    if has_control_characters(value, allow_whitespace=multiline):
        allowed = " other than tabs and line breaks" if multiline else ""
        raise PydanticCustomError("text_control_character",
                                  f"must not contain control characters{allowed}; remove them")
    found = _invisible(value)
    if found is not None:
        raise PydanticCustomError("text_invisible_character", (
            f"contains the invisible or direction-changing character {found} (a bidi control, zero-width, "
            "private-use or separator character), which can make text render as something else; remove it"))
    return value


def name_text(value: str, minimum: int, maximum: int, what: str) -> str:
    """A name as stored: checked, NFKC-normalised, trimmed and within `minimum`..`maximum`."""
    # Checked after NFKC, which decomposes compatibility forms but keeps every refused character.
    normalised = check_text(unicodedata.normalize("NFKC", value)).strip()
    if not minimum <= len(normalised) <= maximum:
        raise PydanticCustomError("text_length", f"{what} must be {minimum} to {maximum} characters after trimming")
    return normalised


def email(value: str) -> str:
    trimmed = value.strip()
    if not trimmed.isascii():
        raise PydanticCustomError("email_not_ascii", (
            "must be an ASCII e-mail address; write an internationalised domain in its xn-- form "
            "(as the domain's DNS name) and use an ASCII mailbox name"))
    if len(trimmed) > 254 or not _EMAIL.match(trimmed) or ".." in trimmed:
        raise PydanticCustomError("email_invalid", "must be an e-mail address of at most 254 characters, "
                                                   "such as weather-team@contoso.com")
    return trimmed
