"""The tool surface a probe saw, as it is stored, and its hash: SHA-256 of the RFC 8785 (JCS)
form, so the same surface hashes the same whatever order or spacing the server sent it in.

What an endpoint sends is cleaned before it is stored or hashed, so that nothing it can send
makes the store or the hash fail: PostgreSQL refuses U+0000 in `text` and `jsonb`, and lone
surrogates (a JSON `\\ud800` escape) in both; JCS has no form for NaN or infinities and reads
numbers as IEEE 754 doubles. The findings read the surface as it was sent (a control character
is itself a finding); the stored and hashed surface is the cleaned one.
"""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Sequence
from typing import Any

import rfc8785

# JCS numbers are IEEE 754 doubles: an integer past 2**53 in a schema is hashed as the double a
# JSON parser would read it as, rather than refused.
_SAFE_INTEGER = 2**53 - 1
# Past this an integer is no double at all (float() overflows); it is stored and hashed as the
# string of its digits. Past Python's default limit on int-to-str conversion (4300 digits) even
# that fails, so such an integer is stored as a note of its size.
_DOUBLE_BITS = 1023
_DIGITS_BITS = 14_000
# Controls other than tab and line breaks, and lone surrogates: written out as the findings'
# excerpts write them, `<U+0000>`, so the stored text says what was there.
_UNSTORABLE = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff]")


def clean_text(text: str) -> str:
    return _UNSTORABLE.sub(lambda match: f"<U+{ord(match.group()):04X}>", text)


def clean(value: Any) -> Any:
    """A JSON value from an endpoint, made storable in `jsonb` and hashable by JCS."""
    if isinstance(value, str):
        return clean_text(value)
    if isinstance(value, dict):
        return {clean_text(str(key)): clean(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [clean(item) for item in value]
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, int):
        if value.bit_length() <= _DOUBLE_BITS:
            return value
        return str(value) if value.bit_length() <= _DIGITS_BITS else f"<integer of {value.bit_length()} bits>"
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    return clean_text(str(value))


def _jcs_safe(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(key): _jcs_safe(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_jcs_safe(item) for item in value]
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) > _SAFE_INTEGER:
        return float(value)  # clean() has made every integer one a double can hold
    return value


def tool_surface(*, tools: Sequence[dict[str, Any]], instructions: str | None, prompts: Sequence[str],
                 resources: Sequence[str]) -> dict[str, Any]:
    """Tools sorted by name, the instructions, and the sorted prompt and resource names."""
    return {
        "tools": sorted(tools, key=lambda tool: str(tool["name"])),
        "instructions": instructions,
        "prompts": sorted(prompts),
        "resources": sorted(resources),
    }


def surface_hash(surface: dict[str, Any]) -> str:
    return hashlib.sha256(rfc8785.dumps(_jcs_safe(surface))).hexdigest()
