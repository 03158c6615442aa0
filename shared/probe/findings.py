"""Findings for the reviewer, by fixed rules over the surface a probe saw (no outside service).

Each finding names its rule, a severity, a JSON pointer into the probe (`/tools/2/description`)
and an excerpt in which hidden characters are written out (`<U+200B>`), so that what a reviewer
reads is what a model would read.

The text comes from the endpoint, so every rule is linear in it: patterns have bounded
quantifiers only, rules that look for words near each other find the words and then compare
their positions (never a regex gap that backtracks), the pattern rules read at most
`SCAN_LIMIT` characters of one string, and the scan keeps at most `MAX_PER_RULE` findings of a
rule and `MAX_FINDINGS` in all, counting what it left out. `scan` runs the rules a string at a
time, yielding to the event loop between strings and stopping at a deadline (the probe's own
time limit), so a hostile surface can neither stall the worker nor outlast the probe.
"""

from __future__ import annotations

import re
import time
import unicodedata
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

Severity = Literal["high", "medium", "low"]
EXCERPT = 120
# Longer than this, a description is more than a reviewer reads and room to hide text in.
MAX_DESCRIPTION = 2000
MAX_INSTRUCTIONS = 4000
# The pattern rules read this much of one string (hidden characters are looked for in all of
# it); a longer string is itself a finding, so what lies past the limit is not silently trusted.
SCAN_LIMIT = 16_384
# A surface that repeats one pattern (a description of 120,000 addresses) yields this many
# findings of that rule, and a probe this many in all; the rest are counted, not listed.
MAX_PER_RULE = 100
MAX_FINDINGS = 1000
# The scan hands the event loop back at least this often (seconds).
_SLICE = 0.005
_SEVERITY_ORDER = {"high": 0, "medium": 1, "low": 2}

# Characters nothing shows and a model still reads: controls other than tab and line breaks
# (ANSI escape sequences start with one), format characters (bidi controls, zero-width, tags),
# every default-ignorable code point (Unicode's DerivedCoreProperties: the combining grapheme
# joiner U+034F, the Hangul fillers U+115F/U+1160/U+3164/U+FFA0, variation selectors U+FE00-FE0F
# and U+E0100-E01EF, ...), line and paragraph separators, the blank Braille pattern U+2800,
# private use and lone surrogates. Python's `unicodedata` has no default-ignorable property,
# so the ranges are written out; tests/test_hostile_servers.py checks them against the
# categories Python knows.
_HIDDEN_CLASS = (
    "\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f"  # Cc, less \t \n \r
    "\u00ad\u034f\u0600-\u0605\u061c\u06dd\u070f\u0890\u0891\u08e2\u115f\u1160\u17b4\u17b5\u180b-\u180f"
    "\u200b-\u200f\u2028-\u202e\u2060-\u206f\u2800\u3164\ufe00-\ufe0f\ufeff\uffa0\ufff0-\ufffb"
    "\U000110bd\U000110cd\U00013430-\U0001343f\U0001bca0-\U0001bca3\U0001d173-\U0001d17a"
    "\U000e0000-\U000e0fff"  # tags, variation selectors supplement, and the reserved rest: default-ignorable
    "\ue000-\uf8ff\U000f0000-\U0010ffff"  # private use
    "\ud800-\udfff"  # lone surrogates (a JSON \\ud800 escape)
)
_HIDDEN = re.compile(f"[{_HIDDEN_CLASS}]")
# An ANSI/VT escape sequence (CSI such as ESC[8m "conceal", OSC, or a two-character one): removed
# whole before the word rules, so the words it hides are read.
_ANSI = re.compile(r"\x1b(?:\[[0-?]{0,32}[ -/]{0,8}[@-~]|\][^\x07\x1b]{0,512}(?:\x07|\x1b\\)?|[@-_])")


# Letters that render like Latin ones. The instruction rules look for English words, so what
# folding needs of Unicode TR39's confusables is the part whose prototype is one Latin letter:
# after NFKC (which already folds the fullwidth, mathematical, circled and similar forms, the
# bulk of confusables.txt's Latin entries) and casefolding, these 335 characters (Cyrillic,
# Greek, Armenian, Cherokee, Coptic, Lisu, ... from confusables.txt) remain, each mapped to its
# lower-case Latin prototype. A table this size keeps the folding one `str.translate`, with no
# data file to load and no dependency to keep in step.
_CONFUSABLE_FROM = (
    "\u00a9\u00ae\u00d7\u0131\u0185\u018d\u01bd\u01c0\u0251\u0261\u0263\u0269\u026a\u026f\u0280\u028b"
    "\u028f\u029d\u03b1\u03b2\u03b3\u03b5\u03b6\u03b7\u03b9\u03ba\u03bc\u03bd\u03bf\u03c1\u03c3\u03c4"
    "\u03c5\u03c7\u03dd\u03f3\u03fb\u0430\u0432\u0433\u0435\u043a\u043c\u043d\u043e\u0440\u0441\u0442"
    "\u0443\u0445\u044c\u0455\u0456\u0458\u0461\u0475\u04af\u04bb\u04bd\u04cf\u0501\u050d\u051b\u051d"
    "\u0561\u0563\u0566\u0570\u0578\u057c\u057d\u057f\u0581\u0584\u0585\u06f1\u06f5\u06f7\u0966\u09e6"
    "\u0a66\u0ae6\u0b20\u0b66\u0be6\u0c02\u0c66\u0c82\u0ce6\u0d02\u0d20\u0d66\u0d82\u0e50\u0ed0\u101d"
    "\u1040\u10e7\u10ff\u1200\u12d0\u13a0\u13a1\u13a2\u13a5\u13a9\u13aa\u13ab\u13ac\u13b1\u13b3\u13b7"
    "\u13bb\u13bd\u13c0\u13c2\u13c3\u13cf\u13d2\u13d4\u13d5\u13d9\u13da\u13de\u13df\u13e2\u13e6\u13e7"
    "\u13f3\u13f4\u142f\u144c\u146d\u146f\u1472\u148d\u14aa\u1541\u157c\u157d\u1587\u15af\u15b4\u15c5"
    "\u15de\u15ea\u15f0\u15f7\u1646\u166d\u166e\u16b7\u16c1\u16d5\u16d6\u18d6\u18f3\u18f4\u18f5\u1d04"
    "\u1d0f\u1d11\u1d1c\u1d20\u1d21\u1d22\u1d26\u1d83\u1d8c\u1e9d\u1eff\u2117\u212e\u2223\u2228\u222a"
    "\u22a4\u22c1\u22c3\u22ff\u2373\u2374\u237a\u23fd\u2502\u2573\u27d9\u292b\u292c\u2a2f\u2c85\u2c8f"
    "\u2c93\u2c95\u2c99\u2c9b\u2c9f\u2ca3\u2ca5\u2ca7\u2ca9\u2cad\u2cd1\u2d38\u2d39\u2d4f\u2d54\u2d55"
    "\u2d5d\u3007\ua4d0\ua4d1\ua4d2\ua4d3\ua4d4\ua4d6\ua4d7\ua4d9\ua4da\ua4dc\ua4dd\ua4df\ua4e0\ua4e1"
    "\ua4e2\ua4e3\ua4e6\ua4e7\ua4ea\ua4eb\ua4ec\ua4ee\ua4f0\ua4f2\ua4f3\ua4f4\ua647\ua6df\ua731\ua799"
    "\ua79f\ua7b5\uab32\uab35\uab3d\uab47\uab48\uab4e\uab52\uab53\uab5a\U00010282\U00010286\U00010287"
    "\U0001028a\U00010290\U00010292\U00010295\U00010296\U00010297\U000102a0\U000102a1\U000102a2\U000102a5"
    "\U000102ab\U000102b0\U000102b1\U000102b2\U000102b4\U000102cf\U000102f5\U00010301\U00010302\U00010309"
    "\U00010311\U00010315\U00010317\U00010320\U00010322\U0001042c\U0001043d\U00010443\U00010448\U000104dc"
    "\U000104ea\U000104f6\U00010513\U00010516\U00010518\U0001051c\U0001051d\U00010525\U00010526\U00010527"
    "\U000114d0\U00011706\U0001170a\U0001170e\U0001170f\U000118c0\U000118c1\U000118c2\U000118c3\U000118c4"
    "\U000118c6\U000118c8\U000118c9\U000118ce\U000118d2\U000118d5\U000118d7\U000118d8\U000118dc\U000118e0"
    "\U000118e5\U000118e6\U000118e9\U000118ec\U000118ef\U000118f2\U00016f08\U00016f0a\U00016f16\U00016f28"
    "\U00016f35\U00016f3a\U00016f40\U00016f42\U00016f43\U0001d20d\U0001d213\U0001d216\U0001d22a\U0001f74c"
    "\U0001f768"
)
_CONFUSABLE_TO = (
    "crxibgslagyiiwruyjabyezhikmnopctuxfjmabrekmhopctyxbsijwvyheidgqwwqqhnnusgfolovoooooooooooooooooooyou"
    "odrtiyajerwmhyghzbrwsvslcpkdgbvupdbjlxhxrbfaddmbzxxxlkmplrscoouvwzrgyfypelvutvueipallxtxxxrhlkmnopct"
    "yxlveloqxobpddtgkjczfmnlsrvhwxyaelouivsfubeforruuxybeflxopstabcfomtyxhzbclmtxlxoclsrounokcvflxovwwwv"
    "sfiyeozelooutozwcxwcvtllrsauyvfrlct"
)
_LOOKALIKES = str.maketrans(_CONFUSABLE_FROM, _CONFUSABLE_TO)
# Tool names: digits and a bar that pass for letters, and the separators a reader's eye skips.
_NAME_LOOKALIKES = str.maketrans("01|", "oll")
_SEPARATORS = re.compile(r"[\s_.\-]+")

# Word patterns have no leading `\b`: the engine then skips ahead to the first letters that can
# start a match, several times faster than trying a boundary at every position; the boundary
# before a match is checked on the few matches instead (`_starts_word`).
_WORD = r"(?:{})\b".format
_SPACE = r"\s{1,8}"
# Phrases that are instructions to a model wherever they stand (on folded text).
_PHRASES = re.compile("|".join((
    _WORD(rf"without{_SPACE}(?:telling|informing|asking|notifying|alerting){_SPACE}the{_SPACE}user"),
    r"</?\s{0,8}(?:important|system|instructions?|admin|secret|hidden)\s{0,8}>",
    _WORD(rf"system{_SPACE}prompt|new{_SPACE}instructions|you{_SPACE}are{_SPACE}now"
          rf"|act{_SPACE}as(?:{_SPACE}an?)?{_SPACE}(?:admin|root|system|developer)"),
    r"(?:~/|\$home/)\.(?:ssh|aws|config|netrc)|id_rsa\b|mcp\.json\b|\.env\b",
)))
# Words that make an instruction when they come in this order, each within the given number of
# characters after the one before: ("ignore", then within 200 "previous", then within 80
# "instructions"), found by position so the distance costs nothing.
_CHAINS: tuple[tuple[tuple[re.Pattern[str], int], ...], ...] = tuple(
    tuple((re.compile(words), gap) for words, gap in chain) for chain in (
        ((_WORD("ignore|disregard|forget|override|bypass|skip"), 0),
         (_WORD("previous|prior|above|earlier|all|any|other|system|preceding|existing|your"), 200),
         (_WORD("instructions?|prompts?|rules?|directions?|messages?|guidelines?|guardrails?|context"), 80)),
        ((_WORD(rf"do{_SPACE}not|don'?t|never|must{_SPACE}not|should{_SPACE}not") + _SPACE
          + _WORD("tell|inform|mention|reveal|show|alert|notify|warn|let"), 0),
         (_WORD("user|human|people"), 60)),
        ((_WORD(rf"before{_SPACE}(?:using|calling|running|invoking){_SPACE}(?:this|any|the|each){_SPACE}tools?"), 0),
         (_WORD("read|send|call|pass|include|upload|post"), 160)),
    ))
_URL = re.compile(r"\b(?:https?|ftp|file|wss?)://[^\s<>\"')\]]{1,2048}", re.IGNORECASE)
# An e-mail address starts where a run of local-part characters starts (the look-behind), so a
# long run without an "@" is read once, not once per character.
_EMAIL = re.compile(r"(?<![A-Z0-9._%+-])[A-Z0-9._%+-]{1,64}@(?:[A-Z0-9-]{1,63}\.){1,8}[A-Z]{2,63}(?![A-Z0-9-])",
                    re.IGNORECASE)
_IPV4 = re.compile(r"\b(?:\d{1,3}\.){3}\d{1,3}\b")
_LOW_RULES = ((_URL, "url"), (_EMAIL, "email_address"), (_IPV4, "ip_address"))
# Strings of the probe where a URL is the point (a server's own website), not a finding.
_URL_FIELDS = ("/server_info/website_url",)


@dataclass(frozen=True)
class Finding:
    rule: str
    severity: Severity
    pointer: str
    excerpt: str

    def as_json(self) -> dict[str, str]:
        return {"rule": self.rule, "severity": self.severity, "pointer": self.pointer, "excerpt": self.excerpt}


@dataclass
class Findings:
    """The findings kept, and how many of each rule were left out by the caps."""

    kept: list[Finding] = field(default_factory=list)
    omitted: Counter[str] = field(default_factory=Counter)
    _per_rule: Counter[str] = field(default_factory=Counter)

    def add(self, finding: Finding) -> None:
        if self._per_rule[finding.rule] >= MAX_PER_RULE:
            self.omitted[finding.rule] += 1
            return
        self._per_rule[finding.rule] += 1
        self.kept.append(finding)

    def close(self) -> Findings:
        """Apply the probe's cap: the least severe findings go first, the order of the rest stays."""
        if len(self.kept) > MAX_FINDINGS:
            ranked = sorted(range(len(self.kept)), key=lambda index: _SEVERITY_ORDER[self.kept[index].severity])
            keep = set(ranked[:MAX_FINDINGS])
            for index in ranked[MAX_FINDINGS:]:
                self.omitted[self.kept[index].rule] += 1
            self.kept = [finding for index, finding in enumerate(self.kept) if index in keep]
        return self


def hidden_character(character: str) -> bool:
    return _HIDDEN.fullmatch(character) is not None


def visible(text: str) -> str:
    """`text` with every hidden or control character written out as `<U+XXXX>`."""
    return _HIDDEN.sub(lambda match: f"<U+{ord(match.group()):04X}>", text)


def _excerpt(text: str, start: int, end: int) -> str:
    margin = max(0, (EXCERPT - (end - start)) // 2)
    left, right = max(0, start - margin), min(len(text), end + margin)
    cut = visible(text[left:min(right, left + EXCERPT * 2)])[:EXCERPT * 2]
    return ("…" if left else "") + cut + ("…" if right < len(text) else "")


def fold(text: str) -> str:
    """`text` as the instruction rules read it: escape sequences and hidden characters removed,
    compatibility forms, case and Latin lookalikes folded (a TR39-style skeleton, casefolded)."""
    text = _HIDDEN.sub("", _ANSI.sub("", text))
    return unicodedata.normalize("NFKC", text).casefold().translate(_LOOKALIKES)


def skeleton(name: str) -> str:
    """A tool name folded the way a reader's eye folds it: compatibility forms, case, lookalike
    letters and separators."""
    return _SEPARATORS.sub("", fold(name).translate(_NAME_LOOKALIKES))


def _starts_word(text: str, match: re.Match[str]) -> bool:
    start = match.start()
    return start == 0 or not (text[start].isalnum() and (text[start - 1].isalnum() or text[start - 1] == "_"))


def _words(pattern: re.Pattern[str], text: str) -> Iterator[re.Match[str]]:
    return (match for match in pattern.finditer(text) if _starts_word(text, match))


def _chain(text: str, chain: tuple[tuple[re.Pattern[str], int], ...]) -> tuple[int, int] | None:
    """The first place where the chain's words follow each other within their distances."""
    (first, _), *rest = chain
    reached = [(match.start(), match.end()) for match in _words(first, text)]
    for pattern, gap in rest:
        if not reached:
            return None
        following: list[tuple[int, int]] = []
        index, nearest = 0, None
        for match in _words(pattern, text):
            # `reached` is in text order with increasing ends: the last one ending before this
            # word is the closest to it.
            while index < len(reached) and reached[index][1] <= match.start():
                nearest, index = reached[index], index + 1
            if nearest is not None and match.start() - nearest[1] <= gap:
                following.append((nearest[0], match.end()))
        reached = following
    return reached[0] if reached else None


def instruction(text: str) -> tuple[int, int] | None:
    """Where `text` (folded) reads as an instruction to a model, if anywhere."""
    phrase = next(_words(_PHRASES, text), None)
    spans = [phrase.span()] if phrase is not None else []
    spans += [span for chain in _CHAINS if (span := _chain(text, chain)) is not None]
    return min(spans, default=None)


def _instruction_finding(pointer: str, text: str) -> Finding | None:
    folded = fold(text)
    span = instruction(folded)
    if span is None and _HIDDEN.search(text) is not None:
        # A hidden character standing for a space ("ignore<U+3164>previous"): read it as one too.
        folded = fold(_HIDDEN.sub(" ", _ANSI.sub(" ", text)))
        span = instruction(folded)
    if span is None:
        return None
    # Folding usually keeps every position: then the excerpt is the endpoint's own text.
    source = text if len(folded) == len(text) else folded
    return Finding("instruction_like", "high", pointer, _excerpt(source, *span))


def text_findings(pointer: str, text: str) -> Iterator[Finding]:
    """The rules for one string of the surface."""
    if (first := _HIDDEN.search(text)) is not None:
        last = len(text) - 1 - _HIDDEN.search(text[::-1]).start()  # type: ignore[union-attr]
        yield Finding("hidden_characters", "high", pointer, _excerpt(text, first.start(), last + 1))
    head = text[:SCAN_LIMIT]
    if (finding := _instruction_finding(pointer, head)) is not None:
        yield finding
    for pattern, rule in _LOW_RULES:
        if rule == "url" and pointer in _URL_FIELDS:
            continue
        for match in pattern.finditer(head):
            yield Finding(rule, "low", pointer, visible(match.group(0))[:EXCERPT])
    if len(text) > SCAN_LIMIT:
        yield Finding("unscanned_text", "medium", pointer,
                      f"{len(text)} characters; the pattern rules read the first {SCAN_LIMIT}")


def pointer_part(key: str) -> str:
    """One RFC 6901 reference token, written as the probe stores the key."""
    from shared.probe.surface import clean_text

    return clean_text(key).replace("~", "~0").replace("/", "~1")


def _texts(value: Any, pointer: str) -> Iterator[tuple[str, str]]:
    """Every string in a JSON value with its pointer, object keys included (a key's pointer is
    its member's)."""
    if isinstance(value, str):
        yield pointer, value
    elif isinstance(value, dict):
        for key, item in value.items():
            member = f"{pointer}/{pointer_part(str(key))}"
            yield member, str(key)
            yield from _texts(item, member)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _texts(item, f"{pointer}/{index}")


@dataclass(frozen=True)
class Surface:
    """What the rules read: the probe's surface as the endpoint sent it, in the stored order
    (tools, prompts and resources sorted by name), with the prompt and resource texts that the
    probe does not store (their titles and descriptions) beside their names."""

    tools: Sequence[Mapping[str, Any]]
    instructions: str | None = None
    server_info: Mapping[str, Any] | None = None
    prompts: Sequence[Mapping[str, Any]] = ()
    resources: Sequence[Mapping[str, Any]] = ()


def _units(surface: Surface, declared_tools: Sequence[str], known_tools: Mapping[str, str] | None,
           ) -> Iterator[Iterator[Finding] | list[Finding]]:
    """The scan in small units of work, each an iterator of findings."""
    for pointer, text in _texts(dict(surface.server_info or {}), "/server_info"):
        yield text_findings(pointer, text)
    if surface.instructions:
        yield text_findings("/instructions", surface.instructions)
        if len(surface.instructions) > MAX_INSTRUCTIONS:
            yield [Finding("oversized_instructions", "medium", "/instructions",
                           f"{len(surface.instructions)} characters (more than {MAX_INSTRUCTIONS})")]
    known = {skeleton(name): (name, server) for name, server in (known_tools or {}).items()}
    for index, tool in enumerate(surface.tools):
        base = f"/tools/{index}"
        name = str(tool.get("name", ""))
        for key in ("name", "title", "description"):
            if isinstance(field_text := tool.get(key), str):
                yield text_findings(f"{base}/{key}", field_text)
        for key in ("input_schema", "annotations"):
            for pointer, text in _texts(tool.get(key), f"{base}/{key}"):
                yield text_findings(pointer, text)
        description = tool.get("description") or ""
        extra: list[Finding] = []
        if len(description) > MAX_DESCRIPTION:
            extra.append(Finding("oversized_description", "medium", f"{base}/description",
                                 f"{len(description)} characters (more than {MAX_DESCRIPTION})"))
        if (known_name := known.get(skeleton(name))) is not None:
            other, server = known_name
            rule = "shadowing" if other == name else "confusable_name"
            extra.append(Finding(rule, "medium", f"{base}/name",
                                 visible(f"{name} (as {other} of {server})")[:EXCERPT * 2]))
        yield extra
    for kind, items in (("prompts", surface.prompts), ("resources", surface.resources)):
        for index, item in enumerate(items):
            # Their texts are read but not stored: the pointer names the prompt or resource.
            for _, text in _texts(dict(item), ""):
                yield text_findings(f"/{kind}/{index}", text)
    if declared_tools:
        discovered = {str(tool.get("name")) for tool in surface.tools}
        yield [Finding("undeclared_tool", "medium", f"/tools/{index}/name", visible(str(tool.get("name")))[:EXCERPT])
               for index, tool in enumerate(surface.tools) if tool.get("name") not in declared_tools]
        yield [Finding("declared_tool_missing", "low", "/tools", visible(name)[:EXCERPT])
               for name in declared_tools if name not in discovered]


def findings(surface: Surface, *, declared_tools: Sequence[str] = (),
             known_tools: Mapping[str, str] | None = None) -> Findings:
    """Every finding over `surface`, capped. `known_tools` maps tool names that other published
    servers expose to the server exposing them; `declared_tools` is the registration's
    `available_tools`."""
    found = Findings()
    for unit in _units(surface, declared_tools, known_tools):
        for finding in unit:
            found.add(finding)
    return found.close()


async def scan(surface: Surface, *, deadline: float, declared_tools: Sequence[str] = (),
               known_tools: Mapping[str, str] | None = None) -> Findings:
    """`findings`, run a unit at a time: the event loop gets its turn at least every few
    milliseconds, and at `deadline` (time.monotonic) the scan stops with a `high` finding saying
    so, since what it did not read may hide anything."""
    import anyio.lowlevel

    found = Findings()
    units = _units(surface, declared_tools, known_tools)
    resumed = time.monotonic()
    for done, unit in enumerate(units, start=1):
        for finding in unit:
            found.add(finding)
        now = time.monotonic()
        if now >= deadline:
            if next(units, None) is not None:
                found.add(Finding("scan_incomplete", "high", "",
                                  f"the findings scan stopped at the probe's time limit after {done} units"))
            break
        if now - resumed >= _SLICE:
            await anyio.lowlevel.checkpoint()
            resumed = time.monotonic()
    return found.close()
