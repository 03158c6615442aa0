"""The text rules of a registration body: characters that may not be shown to a reviewer or a
client, NFKC for names, and ASCII e-mail contacts.

A right-to-left override or a zero-width character makes one name render as another, so a
reviewer approves what they did not read; such characters are refused, never stripped, so the
submitter sees what was wrong. So are the other default-ignorable code points (variation
selectors, the combining grapheme joiner, Hangul fillers), which display as nothing, and the
blank Braille pattern. A name must also be written in one script, as Unicode TR39's "highly
restrictive" level has it: "Місrosoft Graph" with Cyrillic М, і and с is refused, while Latin
beside Han, Hiragana, Katakana, Bopomofo or Hangul is not. Every refusal is a
`PydanticCustomError` whose type names the rule.

Unicode properties (Default_Ignorable_Code_Point, Script_Extensions) come from the `regex`
package's tables, loaded on the first text that is not plain ASCII.
"""

from __future__ import annotations

import re
import unicodedata
from functools import cache, lru_cache
from typing import Any

from pydantic_core import PydanticCustomError

from shared.schemas.common import has_control_characters

# Format (bidi controls, zero-width characters), private-use, and line/paragraph separators.
_INVISIBLE_CATEGORIES = frozenset({"Cf", "Co", "Zl", "Zp"})
_EMAIL = re.compile(
    r"^[A-Za-z0-9!#$%&'*+/=?^_`{|}~.-]{1,64}@"
    r"(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+(?:[A-Za-z]{2,63}|xn--[A-Za-z0-9-]{1,59})$"
)


# Display as blank but are neither default-ignorable nor spaces (U+3164 and its kin are both).
_BLANKS = frozenset("\u2800")
# ISO 15924 codes of every script (Common, Inherited and Unknown aside), as Script_Extensions names them.
_SCRIPTS = (
    "Latn", "Bopo", "Grek", "Copt", "Cyrl", "Armn", "Hebr", "Arab", "Syrc", "Thaa", "Nkoo", "Samr", "Mand", "Deva",
    "Beng", "Guru", "Gujr", "Orya", "Taml", "Telu", "Knda", "Mlym", "Sinh", "Thai", "Laoo", "Tibt", "Mymr", "Geor",
    "Hang", "Ethi", "Cher", "Cans", "Ogam", "Runr", "Tglg", "Hano", "Buhd", "Tagb", "Khmr", "Mong", "Limb", "Tale",
    "Talu", "Bugi", "Lana", "Bali", "Sund", "Batk", "Lepc", "Olck", "Brai", "Glag", "Tfng", "Hani", "Hira", "Kana",
    "Yiii", "Lisu", "Vaii", "Bamu", "Sylo", "Phag", "Saur", "Kali", "Rjng", "Java", "Cham", "Tavt", "Mtei", "Linb",
    "Lyci", "Cari", "Ital", "Goth", "Perm", "Ugar", "Xpeo", "Dsrt", "Shaw", "Osma", "Osge", "Elba", "Aghb", "Vith",
    "Todr", "Lina", "Cprt", "Armi", "Palm", "Nbat", "Hatr", "Phnx", "Lydi", "Sidt", "Mero", "Merc", "Khar", "Sarb",
    "Narb", "Mani", "Avst", "Prti", "Phli", "Phlp", "Orkh", "Hung", "Rohg", "Gara", "Yezi", "Sogo", "Sogd", "Ougr",
    "Chrs", "Elym", "Brah", "Kthi", "Sora", "Cakm", "Mahj", "Shrd", "Khoj", "Mult", "Sind", "Gran", "Tutg", "Newa",
    "Tirh", "Sidd", "Modi", "Takr", "Ahom", "Dogr", "Wara", "Diak", "Nand", "Zanb", "Soyo", "Pauc", "Sunu", "Bhks",
    "Marc", "Gonm", "Gong", "Tols", "Maka", "Kawi", "Xsux", "Pcun", "Cpmn", "Egyp", "Hluw", "Gukh", "Mroo", "Tnsa",
    "Bass", "Hmng", "Krai", "Medf", "Berf", "Miao", "Tang", "Nshu", "Kits", "Jurc", "Dupl", "Sgnw", "Hmnp", "Toto",
    "Wcho", "Nagm", "Onao", "Tayo", "Mend", "Adlm", "Seal",
)
# TR39's augmented script sets: Han is also written within Japanese, Korean and Han-with-Bopomofo text.
_AUGMENTED = {"Hani": {"Hanb", "Jpan", "Kore"}, "Hira": {"Jpan"}, "Kana": {"Jpan"}, "Hang": {"Kore"},
              "Bopo": {"Hanb"}}
# The "highly restrictive" level's covering sets beside a single script.
_COVERING = ({"Latn", "Hani", "Hira", "Kana"}, {"Latn", "Hani", "Bopo"}, {"Latn", "Hani", "Hang"})


@cache
def _properties() -> tuple[Any, dict[str, Any]]:
    import regex  # type: ignore[import-untyped]

    ignorable = regex.compile(r"[\p{Default_Ignorable_Code_Point}]")
    scripts: dict[str, Any] = {}
    for code in _SCRIPTS:
        try:
            scripts[code] = regex.compile(rf"\p{{scx={code}}}")
        except regex.error:  # a script newer than the installed tables: no character has it there
            continue
    return ignorable, scripts


@lru_cache(maxsize=4096)
def _scripts_of(character: str) -> frozenset[str]:
    """The augmented script set of a character; empty for Common and Inherited ones, which go with any."""
    found: set[str] = set()
    for code, pattern in _properties()[1].items():
        if pattern.match(character):
            found.add(code)
            found.update(_AUGMENTED.get(code, ()))
    return frozenset(found)


def _invisible(value: str) -> str | None:
    for character in value:
        if unicodedata.category(character) in _INVISIBLE_CATEGORIES:
            return f"U+{ord(character):04X}"
    return None


def _ignorable(value: str) -> str | None:
    if value.isascii():
        return None
    for character in value:
        if character in _BLANKS or _properties()[0].match(character):
            return f"U+{ord(character):04X}"
    return None


def mixed_script(value: str) -> str | None:
    """The first character that takes `value` out of a single script (TR39 highly restrictive), or None."""
    if value.isascii():
        return None
    sets = [(character, _scripts_of(character)) for character in value]
    sets = [(character, scripts) for character, scripts in sets if scripts]
    common: set[str] = set(sets[0][1]) if sets else set()
    for _, scripts in sets:
        common &= scripts
    if common or any(all(scripts & covering for _, scripts in sets) for covering in _COVERING):
        return None
    # Named: a character outside the script most of the letters are in (the odd one out).
    counts: dict[str, int] = {}
    for _, scripts in sets:
        for code in scripts:
            counts[code] = counts.get(code, 0) + 1
    main = max(sorted(counts), key=lambda code: counts[code])
    return next(character for character, scripts in sets if main not in scripts)


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
    found = _ignorable(value)
    if found is not None:
        raise PydanticCustomError("text_ignorable_character", (
            f"contains {found}, a character that displays as nothing (a variation selector, combining grapheme "
            "joiner, filler or blank pattern), so the text would not read as what it holds; remove it"))
    return value


def name_text(value: str, minimum: int, maximum: int, what: str) -> str:
    """A name as stored: checked, NFKC-normalised, trimmed and within `minimum`..`maximum`."""
    # Checked as submitted (the refusal names the character typed: NFKC turns U+3164 into U+1160),
    # and after NFKC, which decomposes compatibility forms but keeps every refused character.
    normalised = check_text(unicodedata.normalize("NFKC", check_text(value))).strip()
    if not minimum <= len(normalised) <= maximum:
        raise PydanticCustomError("text_length", f"{what} must be {minimum} to {maximum} characters after trimming")
    odd = mixed_script(normalised)
    if odd is not None:
        name = unicodedata.name(odd, "unnamed character")
        raise PydanticCustomError("text_mixed_script", (
            f"mixes scripts: U+{ord(odd):04X} {name} among letters of another script, which lets one name pass "
            "for another; write it in one script (Latin may stand beside Han, Hiragana, Katakana, Bopomofo or "
            "Hangul)"))
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
