"""Domain errors. Raised anywhere below the handlers; `shared.http` turns each into problem+json."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar


class ApiError(Exception):
    """An error with a fixed HTTP status and a human-readable `detail` safe to show to callers."""

    status: ClassVar[int] = 500
    title: ClassVar[str] = "Internal Server Error"

    def __init__(self, detail: str, *, headers: Mapping[str, str] | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        self.headers: dict[str, str] = dict(headers or {})


class BadRequest(ApiError):
    status = 400
    title = "Bad Request"


class Unauthorized(ApiError):
    """401 with the RFC 6750 challenge; `error` is omitted when no credentials were sent."""

    status = 401
    title = "Unauthorized"

    def __init__(self, detail: str, *, error: str | None = "invalid_token") -> None:
        challenge = f'Bearer error="{error}"' if error else "Bearer"
        super().__init__(detail, headers={"WWW-Authenticate": challenge})


class Forbidden(ApiError):
    status = 403
    title = "Forbidden"


class InsufficientScope(Forbidden):
    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.headers["WWW-Authenticate"] = 'Bearer error="insufficient_scope"'


class NotFound(ApiError):
    status = 404
    title = "Not Found"


class Conflict(ApiError):
    status = 409
    title = "Conflict"


class PreconditionFailed(ApiError):
    status = 412
    title = "Precondition Failed"


class PayloadTooLarge(ApiError):
    status = 413
    title = "Content Too Large"


class UnsupportedMediaType(ApiError):
    status = 415
    title = "Unsupported Media Type"


class ValidationFailed(ApiError):
    status = 422
    title = "Unprocessable Content"

    def __init__(self, detail: str, errors: Sequence[Mapping[str, Any]]) -> None:
        super().__init__(detail)
        self.errors = [dict(error) for error in errors]


class PreconditionRequired(ApiError):
    status = 428
    title = "Precondition Required"


class TooManyRequests(ApiError):
    status = 429
    title = "Too Many Requests"

    def __init__(self, detail: str, *, retry_after: int) -> None:
        super().__init__(detail, headers={"Retry-After": str(retry_after)})


class ServiceUnavailable(ApiError):
    status = 503
    title = "Service Unavailable"

    def __init__(self, detail: str, *, retry_after: int = 5) -> None:
        super().__init__(detail, headers={"Retry-After": str(retry_after)})

