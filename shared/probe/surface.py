"""The tool surface a probe saw, and its hash: SHA-256 of the RFC 8785 (JCS) form, so the same
surface hashes the same whatever order or spacing the server sent it in."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any

import rfc8785

# JCS numbers are IEEE 754 doubles: an integer past 2**53 in a schema is hashed as the double a
# JSON parser would read it as, rather than refused.
_SAFE_INTEGER = 2**53 - 1


def _jcs_safe(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(key): _jcs_safe(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_jcs_safe(item) for item in value]
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) > _SAFE_INTEGER:
        return float(value)
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
