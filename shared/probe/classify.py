"""The outcome of a failed session, from what the guard saw on the wire: the SDK turns HTTP
answers into JSON-RPC errors or exception groups of its own, but the status codes, headers and
refusals the guard recorded say plainly what happened."""

from __future__ import annotations

from shared.egress import Budget
from shared.probe.result import Outcome

_DETAIL = 300


def _innermost(failure: BaseException) -> BaseException:
    """The first leaf of an exception group (anyio task groups wrap what a transport raised)."""
    while isinstance(failure, BaseExceptionGroup) and failure.exceptions:
        failure = failure.exceptions[0]
    return failure


def describe(failure: BaseException | None) -> str:
    if failure is None:
        return "the session ended without an answer"
    leaf = _innermost(failure)
    text = str(leaf) or type(leaf).__name__
    return f"{type(leaf).__name__}: {text}"[:_DETAIL]


def classify(budget: Budget, failure: BaseException | None) -> tuple[Outcome, str]:
    if budget.refusal is not None:
        return "refused", budget.refusal[:_DETAIL]
    if budget.exceeded:
        return "refused", f"the endpoint sent more than {budget.max_bytes} bytes"
    for seen in budget.seen:
        if seen.status in (401, 403) and seen.www_authenticate:
            return "auth_required", f"HTTP {seen.status} with WWW-Authenticate: {seen.www_authenticate}"[:_DETAIL]
    if not budget.seen:
        return "unreachable", (budget.connect_error or describe(failure))[:_DETAIL]
    for seen in budget.seen:
        if 300 <= seen.status < 400:
            return "not_mcp", (f"HTTP {seen.status} redirecting to {seen.location or 'nowhere'}; "
                               "the probe follows no redirect")[:_DETAIL]
    seen = budget.seen[0]
    kind = seen.content_type or "no content type"
    return "not_mcp", f"HTTP {seen.status} ({kind}) from {seen.url} did not open an MCP session"[:_DETAIL]
