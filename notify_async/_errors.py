"""Pure functions that turn what came back into the error a caller sees.

Nothing here sends, waits or holds state. Every function takes what it needs (the call's
method and path, the answer, a ``Redactor`` that knows which keys to mask, and the advice
the resource gives for its own endpoint) and returns an exception for the pipeline to raise.
"""

from __future__ import annotations

__all__ = [
    "Redactor",
    "invalid_response",
    "outcome_unknown",
    "reason",
    "status_error",
]

from collections.abc import Mapping
from typing import Protocol

from ._exceptions import (
    APIConnectionError,
    APIStatusError,
    APITimeoutError,
    AuthenticationError,
    BadRequestError,
    InternalServerError,
    InvalidResponseError,
    NotFoundError,
    NotifyError,
    OutcomeUnknownError,
    PermissionDeniedError,
    RateLimitError,
)
from ._models import decode_json, describe_body
from ._retry import parse_retry_after


class Redactor(Protocol):
    """Masks every key a client has held, in text and in raw bytes."""

    def redact(self, text: str) -> str:
        """Return ``text`` with every known key replaced by its redacted prefix."""
        ...

    def redact_bytes(self, raw: bytes) -> bytes:
        """Return ``raw`` with every known key replaced by its redacted prefix."""
        ...


_STATUS_ERRORS: dict[int, type[APIStatusError]] = {
    400: BadRequestError,
    401: AuthenticationError,
    403: PermissionDeniedError,
    404: NotFoundError,
    429: RateLimitError,
}


def status_error(
    method: str,
    path: str,
    status: int,
    raw: bytes,
    headers: Mapping[str, str],
    *,
    redactor: Redactor,
    advice: str | None = None,
) -> APIStatusError:
    """The error for a non-2xx answer; ``advice`` overrides the status's generic advice."""
    server_message = redactor.redact(_server_message(redactor.redact_bytes(raw)))
    error_class = _STATUS_ERRORS.get(status) or (
        InternalServerError if status >= 500 else APIStatusError
    )
    retry_after = parse_retry_after(headers.get("Retry-After"))
    advice = advice or _status_advice(status, retry_after, headers)
    message = f"{method} {path} failed with HTTP {status}: {server_message}"
    if advice:
        # Advice may quote a header (a redirect's Location), which may quote the key.
        message += f" ({redactor.redact(advice)})"
    return error_class(
        message,
        status_code=status,
        server_message=server_message,
        method=method,
        path=path,
        retry_after=retry_after,
    )


def invalid_response(
    method: str, path: str, raw: bytes, *, redactor: Redactor
) -> InvalidResponseError:
    """The error for a 2xx answer whose envelope is not ``{"success": true, ...}``."""
    raw = redactor.redact_bytes(raw)
    try:
        body = decode_json(raw)
    except InvalidResponseError as exc:
        message = exc.message
    else:
        message = _describe_bad_envelope(method, path, body)
    if not message.startswith(f"{method} {path}: "):
        message = f"{method} {path}: {message}"
    return InvalidResponseError(redactor.redact(message))


def outcome_unknown(
    error: NotifyError, method: str, path: str, *, advice: str | None
) -> OutcomeUnknownError:
    """Wrap ``error`` of a call that may or may not have taken effect."""
    status = error.status_code if isinstance(error, APIStatusError) else None
    # The underlying message starts with "METHOD /path: " too; say that only once.
    what = (
        f"HTTP {status}" if status is not None else error.message.removeprefix(f"{method} {path}: ")
    )
    unknown = OutcomeUnknownError(
        f"{method} {path}: outcome unknown after {what}: "
        f"{advice or 'the call may or may not have taken effect'}",
        method=method,
        path=path,
        status_code=status,
    )
    unknown.attempts = error.attempts
    unknown.__cause__ = error
    return unknown


def outcome_open(error: NotifyError) -> bool:
    """Whether ``error`` leaves open that the server acted on the request."""
    if isinstance(error, APIConnectionError):
        return error.request_sent
    if isinstance(error, APIStatusError):
        # 503 and 429 are refusals; every other 5xx may have come after the work was done.
        return error.status_code >= 500 and error.status_code != 503
    return False


def reason(error: BaseException | None) -> str:
    """A few words naming a failure, for retry logs."""
    if isinstance(error, APIStatusError):
        return f"HTTP {error.status_code}"
    if isinstance(error, APITimeoutError):
        return "a timeout"
    if isinstance(error, APIConnectionError):
        return "a connection error"
    return type(error).__name__


def _server_message(raw: bytes) -> str:
    """The server's explanation of an error: JSON ``message`` or ``error``, or a snippet."""
    try:
        body = decode_json(raw)
    except InvalidResponseError:
        return describe_body(raw)
    if isinstance(body, dict):
        for field in ("message", "error", "detail"):
            value = body.get(field)
            if isinstance(value, dict):
                value = value.get("message")
            if isinstance(value, str) and value.strip():
                return value.strip()[:300]
    return describe_body(raw)


def _status_advice(
    status: int, retry_after: float | None, headers: Mapping[str, str]
) -> str | None:
    if status == 429:
        if retry_after is None:
            return "rate limited; slow down and retry later"
        return f"rate limited; retry after {retry_after:g}s"
    if status == 403:
        return "the key may not do this; several keys per account need the Pro plan"
    if 300 <= status < 400:
        return (
            f"unexpected redirect to {headers.get('Location', '?')!r}; check base_url "
            "(redirects are not followed, so that the key does not travel elsewhere)"
        )
    if status >= 500:
        return "Notify or a proxy in front of it failed"
    return None


def _describe_bad_envelope(method: str, path: str, body: object) -> str:
    if isinstance(body, dict):
        detail = body.get("message") or body.get("error")
        suffix = f": {str(detail)[:200]}" if detail else ""
        return (
            f"{method} {path}: the server answered 2xx with success={body.get('success')!r}{suffix}"
        )
    return (
        f"{method} {path}: expected a JSON object, got "
        f"{'null' if body is None else type(body).__name__}"
    )
