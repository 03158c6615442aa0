"""Findings for the reviewer, by fixed rules over the surface a probe saw (no outside service).

Each finding names its rule, a severity, a JSON pointer into the probe (`/tools/2/description`)
and an excerpt in which hidden characters are written out (`<U+200B>`), so that what a reviewer
reads is what a model would read.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

Severity = Literal["high", "medium", "low"]
EXCERPT = 120
# Longer than this, a description is more than a reviewer reads and room to hide text in.
MAX_DESCRIPTION = 2000
MAX_INSTRUCTIONS = 4000

_INSTRUCTION_LIKE = re.compile("|".join((
    r"\b(?:ignore|disregard|forget|override)\b.{0,40}\b(?:previous|prior|above|earlier|all|other|system)\b"
    r".{0,20}\b(?:instructions?|prompts?|rules?|directions?|messages?)",
    r"\b(?:do\s*n[o']t|never|must\s+not)\s+(?:tell|inform|mention|reveal|show|alert|notify)\b.{0,20}\buser",
    r"\bwithout\s+(?:telling|informing|asking|notifying)\s+the\s+user",
    r"</?\s*(?:important|system|instructions?|admin|secret|hidden)\s*>",
    r"\b(?:system\s+prompt|new\s+instructions|you\s+are\s+now|act\s+as\s+(?:an?\s+)?(?:admin|root|system))\b",
    r"\bbefore\s+(?:using|calling|running)\s+(?:this|any)\s+tool\b.{0,60}\b(?:read|send|call|pass|include)\b",
    r"(?:~/|\$HOME/)\.(?:ssh|aws|config|netrc)|\bid_rsa\b|\bmcp\.json\b|\.env\b",
)), re.IGNORECASE | re.DOTALL)
_URL = re.compile(r"\b(?:https?|ftp|file|wss?)://[^\s<>\"')\]]+", re.IGNORECASE)
_EMAIL = re.compile(r"\b[A-Z0-9._%+-]+@[A-Z0-9.-]+\.[A-Z]{2,}\b", re.IGNORECASE)
_IPV4 = re.compile(r"\b(?:\d{1,3}\.){3}\d{1,3}\b")
# Letters that render like Latin ones in most fonts (Unicode TR39's confusables, the common part).
_LOOKALIKES = str.maketrans({
    "а": "a", "е": "e", "о": "o", "р": "p", "с": "c", "у": "y", "х": "x", "і": "i", "ј": "j", "ѕ": "s",
    "һ": "h", "ԁ": "d", "ԛ": "q", "ԝ": "w", "ɡ": "g", "α": "a", "ο": "o", "ρ": "p", "ν": "v", "ι": "i",
    "κ": "k", "τ": "t", "υ": "u", "χ": "x", "ε": "e", "0": "o", "1": "l", "|": "l", "ı": "i",
})


@dataclass(frozen=True)
class Finding:
    rule: str
    severity: Severity
    pointer: str
    excerpt: str

    def as_json(self) -> dict[str, str]:
        return {"rule": self.rule, "severity": self.severity, "pointer": self.pointer, "excerpt": self.excerpt}


def _hidden(character: str) -> bool:
    """Format characters (bidi controls, zero-width, tag characters), private use, and variation
    selectors: nothing a reader sees, all of it read by a model."""
    code = ord(character)
    return (unicodedata.category(character) in ("Cf", "Co", "Cs")
            or 0xFE00 <= code <= 0xFE0F or 0xE0100 <= code <= 0xE01EF)


def visible(text: str) -> str:
    """`text` with every hidden or control character written out as `<U+XXXX>`."""
    return "".join(f"<U+{ord(c):04X}>" if _hidden(c) or (unicodedata.category(c) == "Cc" and c not in "\n\t")
                   else c for c in text)


def _excerpt(text: str, start: int, end: int) -> str:
    margin = max(0, (EXCERPT - (end - start)) // 2)
    left, right = max(0, start - margin), min(len(text), end + margin)
    cut = visible(text[left:right])[:EXCERPT * 2]
    return ("…" if left else "") + cut + ("…" if right < len(text) else "")


def skeleton(name: str) -> str:
    """A tool name folded the way a reader's eye folds it: compatibility forms, case, lookalike
    letters and separators."""
    folded = unicodedata.normalize("NFKC", name).casefold().translate(_LOOKALIKES)
    return re.sub(r"[\s_.\-]+", "", folded)


def _texts(value: Any, pointer: str) -> Iterator[tuple[str, str]]:
    """Every string in a JSON value with its pointer (RFC 6901 escaping)."""
    if isinstance(value, str):
        yield pointer, value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _texts(item, f"{pointer}/{str(key).replace('~', '~0').replace('/', '~1')}")
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _texts(item, f"{pointer}/{index}")


def _text_findings(pointer: str, text: str) -> Iterator[Finding]:
    hidden = [index for index, character in enumerate(text) if _hidden(character)]
    if hidden:
        yield Finding("hidden_characters", "high", pointer, _excerpt(text, hidden[0], hidden[-1] + 1))
    if (match := _INSTRUCTION_LIKE.search(text)) is not None:
        yield Finding("instruction_like", "high", pointer, _excerpt(text, match.start(), match.end()))
    for pattern, rule in ((_URL, "url"), (_EMAIL, "email_address"), (_IPV4, "ip_address")):
        for match in pattern.finditer(text):
            yield Finding(rule, "low", pointer, visible(match.group(0))[:EXCERPT])


def findings(*, tools: Sequence[Mapping[str, Any]], instructions: str | None, declared_tools: Sequence[str] = (),
             known_tools: Mapping[str, str] | None = None) -> list[Finding]:
    """Findings over `tools` (as the probe stores them, sorted by name) and `instructions`.

    `known_tools` maps tool names that other published servers expose to the server exposing
    them; `declared_tools` is the registration's `available_tools`.
    """
    found: list[Finding] = []
    if instructions:
        found.extend(_text_findings("/instructions", instructions))
        if len(instructions) > MAX_INSTRUCTIONS:
            found.append(Finding("oversized_instructions", "medium", "/instructions",
                                 f"{len(instructions)} characters (more than {MAX_INSTRUCTIONS})"))
    known = {skeleton(name): (name, server) for name, server in (known_tools or {}).items()}
    for index, tool in enumerate(tools):
        base = f"/tools/{index}"
        name = str(tool.get("name", ""))
        for pointer, text in _texts({key: tool.get(key) for key in ("name", "title", "description")}, base):
            found.extend(_text_findings(pointer, text))
        for pointer, text in _texts(tool.get("input_schema"), f"{base}/input_schema"):
            found.extend(_text_findings(pointer, text))
        description = tool.get("description") or ""
        if len(description) > MAX_DESCRIPTION:
            found.append(Finding("oversized_description", "medium", f"{base}/description",
                                 f"{len(description)} characters (more than {MAX_DESCRIPTION})"))
        if (known_name := known.get(skeleton(name))) is not None:
            other, server = known_name
            rule = "shadowing" if other == name else "confusable_name"
            found.append(Finding(rule, "medium", f"{base}/name",
                                 visible(f"{name} (as {other} of {server})")[:EXCERPT * 2]))
    if declared_tools:
        discovered = {str(tool.get("name")) for tool in tools}
        for index, tool in enumerate(tools):
            if tool.get("name") not in declared_tools:
                found.append(Finding("undeclared_tool", "medium", f"/tools/{index}/name",
                                     visible(str(tool.get("name")))[:EXCERPT]))
        for name in declared_tools:
            if name not in discovered:
                found.append(Finding("declared_tool_missing", "low", "/tools", visible(name)[:EXCERPT]))
    return found
