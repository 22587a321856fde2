r"""Pure functions that turn what came back into the error a caller sees.

Nothing here sends, waits or holds state. Every function takes what it needs (the call's
method and path, the answer, a ``Redactor`` that knows which keys to mask, and the advice
the resource gives for its own endpoint) and returns an exception for the pipeline to raise.

Masking comes first, before anything is decoded or cut: every key the client has held is
replaced by its redacted prefix in the raw body (also where the server escaped it, as JSON
``\u006e``/``\/``, URL ``%6E`` or HTML ``&#110;``), in the headers, and again in every
decoded string before a snippet of it is taken. A cut through the middle of a key can then
show no more than the mask.
"""

from __future__ import annotations

__all__ = [
    "REQUEST_ID_HEADERS",
    "Mask",
    "Redactor",
    "invalid_response",
    "outcome_open",
    "outcome_unknown",
    "reason",
    "request_id",
    "status_error",
    "too_large",
]

import bisect
import re
from collections.abc import Iterable, Mapping
from typing import Protocol

from multidict import CIMultiDict, CIMultiDictProxy

from ._credentials import redact
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
    OutcomeUnknownConnectionError,
    OutcomeUnknownError,
    OutcomeUnknownInvalidResponseError,
    OutcomeUnknownServerError,
    OutcomeUnknownTimeoutError,
    PermissionDeniedError,
    RateLimitError,
)
from ._models import decode_json, describe_body
from ._retry import parse_retry_after

REQUEST_ID_HEADERS = ("x-request-id", "request-id", "x-amzn-requestid", "cf-ray")
"""Response headers read for ``NotifyError.request_id``, the first one present wins."""

_KEPT_BODY_BYTES = 64 * 1024
"""How much of an answer's body an error keeps (and masks, and reads its message from)."""
_SERVER_MESSAGE_CHARS = 300
_ENVELOPE_DETAIL_CHARS = 200


class Redactor(Protocol):
    """Knows every key a client has held (``KeyHolder`` is one)."""

    def known_keys(self) -> list[str]:
        """The key in use and the ones it replaced: what to mask in anything a server sends."""
        ...


class Mask:
    r"""Replaces every given key, however it is escaped, by its redacted prefix.

    The text is read with every escape decoded (JSON ``\u0061``, ``\/``, ``\"``, ``\\``;
    URL ``%61``; HTML ``&#97;``, ``&#x61;`` and ``&amp;``-style names), the keys are found
    in that reading, and each is replaced where it stood in the original, escaped or not.
    """

    __slots__ = ("_keys", "_margin")

    def __init__(self, keys: Iterable[str]) -> None:
        # Longest first: a key that contains another is masked whole.
        unique = sorted({key for key in keys if key}, key=len, reverse=True)
        self._keys = [(key, redact(key)) for key in unique]
        # The longest a key can be when each character is escaped (&#x10FFFF; is 10).
        self._margin = 10 * len(unique[0]) if unique else 0

    def text(self, text: str, *, keep: int | None = None) -> str:
        """``text`` with every key masked; with ``keep``, only its first ``keep`` characters.

        A key that the cut at ``keep`` would split is masked whole first.
        """
        limit = len(text) if keep is None else min(keep, len(text))
        if not self._keys:
            return text[:limit]
        window = text[: limit + self._margin]
        escapes = list(_ESCAPE.finditer(window))
        # The decoded reading, and where each decoded escape sits in it.
        parts: list[str] = []
        decoded_at: list[int] = []
        length = last = 0
        for escape in escapes:
            plain = window[last : escape.start()]
            parts.append(plain)
            length += len(plain)
            decoded_at.append(length)
            parts.append(_decode(escape))
            length += 1
            last = escape.end()
        parts.append(window[last:])
        reading = "".join(parts)

        def start_in_text(index: int) -> int:
            n = bisect.bisect_right(decoded_at, index)  # escapes at or before index
            if n and decoded_at[n - 1] == index:
                return escapes[n - 1].start()
            return index if not n else escapes[n - 1].end() + index - decoded_at[n - 1] - 1

        def end_in_text(index: int) -> int:  # where the character at index ends
            n = bisect.bisect_right(decoded_at, index)
            if n and decoded_at[n - 1] == index:
                return escapes[n - 1].end()
            return start_in_text(index) + 1

        spans: list[tuple[int, int, str]] = []
        for key, prefix in self._keys:
            found = reading.find(key)
            while found != -1:
                end = found + len(key)
                spans.append((start_in_text(found), end_in_text(end - 1), prefix))
                found = reading.find(key, end)
        out: list[str] = []
        position = 0
        for start, end, prefix in sorted(spans):
            if start >= limit:
                break
            if start < position:
                continue  # inside a longer key already masked
            out.append(text[position:start])
            out.append(prefix)
            position = end
        if position < limit:
            out.append(text[position:limit])
        return "".join(out)

    def bytes(self, raw: bytes, *, keep: int | None = None) -> bytes:
        """``raw`` with every key masked; with ``keep``, only its first ``keep`` bytes."""
        # Latin-1 maps each byte to one character and back, leaving other bytes as they are.
        masked = self.text(raw.decode("latin-1"), keep=keep).encode("latin-1")
        for key, prefix in self._keys:  # a key beyond Latin-1, written as UTF-8
            if not key.isascii():
                masked = masked.replace(key.encode(), prefix.encode())
        return masked


_ESCAPE = re.compile(
    r"\\u([0-9a-fA-F]{4})"  # JSON
    r'|\\([/"\\\\])'  # JSON: \/ (as PHP writes it), \", \\
    r"|%([0-9a-fA-F]{2})"  # URL
    r"|&#([0-9]{1,7});|&#[xX]([0-9a-fA-F]{1,6});"  # HTML, numeric
    r"|&(amp|quot|apos|lt|gt);"  # HTML, named
)
_NAMED = {"amp": "&", "quot": '"', "apos": "'", "lt": "<", "gt": ">"}


def _decode(escape: re.Match[str]) -> str:
    json_code, json_char, url, html_dec, html_hex, named = escape.groups()
    if json_char is not None:
        return json_char
    if named is not None:
        return _NAMED[named]
    code = int(html_dec) if html_dec is not None else int(json_code or url or html_hex, 16)
    return chr(code) if code < 0x110000 else "\ufffd"


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
    mask = Mask(redactor.known_keys())
    raw = mask.bytes(raw, keep=_KEPT_BODY_BYTES)
    masked_headers = _masked_headers(headers, mask)
    server_message = _server_message(raw, mask)
    error_class = _STATUS_ERRORS.get(status) or (
        InternalServerError if status >= 500 else APIStatusError
    )
    retry_after = parse_retry_after(masked_headers.get("Retry-After"))
    advice = advice or _status_advice(status, retry_after, masked_headers)
    message = f"{method} {path} failed with HTTP {status}: {server_message}"
    if advice:
        # Advice may quote a header (a redirect's Location), which may quote the key.
        message += f" ({mask.text(advice)})"
    answer_id = request_id(masked_headers)
    if answer_id is not None:
        message += f" [request id {answer_id}]"
    error = error_class(
        message,
        status_code=status,
        server_message=server_message,
        method=method,
        path=path,
        retry_after=retry_after,
    )
    _attach_answer(error, raw, masked_headers, answer_id)
    return error


def invalid_response(
    method: str,
    path: str,
    raw: bytes,
    *,
    redactor: Redactor,
    headers: Mapping[str, str] | None = None,
) -> InvalidResponseError:
    """The error for a 2xx answer whose envelope is not ``{"success": true, ...}``."""
    mask = Mask(redactor.known_keys())
    raw = mask.bytes(raw, keep=_KEPT_BODY_BYTES)
    try:
        body = decode_json(raw)
    except InvalidResponseError as exc:
        message = exc.message
    else:
        message = _describe_bad_envelope(method, path, body, mask)
    if not message.startswith(f"{method} {path}: "):
        message = f"{method} {path}: {message}"
    masked_headers = _masked_headers(headers or {}, mask)
    answer_id = request_id(masked_headers)
    if answer_id is not None:
        message += f" [request id {answer_id}]"
    error = InvalidResponseError(mask.text(message))
    _attach_answer(error, raw, masked_headers, answer_id)
    return error


def too_large(method: str, path: str, limit: int, announced: int | None) -> InvalidResponseError:
    """The error for a 2xx body larger than the client's ``max_response_bytes``."""
    size = f"{announced} bytes announced" if announced is not None else "no Content-Length"
    return InvalidResponseError(
        f"{method} {path}: the response body is larger than max_response_bytes={limit} "
        f"({size}), so it was not read further; check base_url, or raise max_response_bytes"
    )


_OUTCOME_UNKNOWN_CLASSES: tuple[tuple[type[NotifyError], type[OutcomeUnknownError]], ...] = (
    # Most specific first: an APITimeoutError is an APIConnectionError too.
    (InternalServerError, OutcomeUnknownServerError),
    (APITimeoutError, OutcomeUnknownTimeoutError),
    (APIConnectionError, OutcomeUnknownConnectionError),
    (InvalidResponseError, OutcomeUnknownInvalidResponseError),
)


def outcome_unknown(
    error: NotifyError, method: str, path: str, *, advice: str | None
) -> OutcomeUnknownError:
    """Wrap ``error`` of a call that may or may not have taken effect.

    The result is an ``OutcomeUnknownError`` and an instance of ``error``'s own class
    family, with ``error``'s attributes, and ``error`` as its ``__cause__``.
    """
    status = error.status_code if isinstance(error, APIStatusError) else None
    # The underlying message starts with "METHOD /path: " too; say that only once.
    detail = error.message.removeprefix(f"{method} {path}: ")
    if status is not None:
        what = f"HTTP {status}"
    elif isinstance(error, InvalidResponseError):
        what = f"a 2xx answer that is not usable ({detail})"
    else:
        what = detail
    message = (
        f"{method} {path}: outcome unknown after {what}: "
        f"{advice or 'the call may or may not have taken effect'}"
    )
    if error.request_id is not None and status is not None:
        message += f" [request id {error.request_id}]"
    unknown_class = next(
        (unknown for base, unknown in _OUTCOME_UNKNOWN_CLASSES if isinstance(error, base)),
        OutcomeUnknownError,
    )
    unknown = unknown_class(message, method=method, path=path, status_code=status)
    # The underlying class's attributes (server_message, retry_after, request_sent, ...),
    # so that code written against that class keeps working; ours win where both exist.
    for name, value in vars(error).items():
        unknown.__dict__.setdefault(name, value)
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
        return "a timeout" if error.request_sent else "a timeout before the request was sent"
    if isinstance(error, APIConnectionError):
        return "a connection error"
    return type(error).__name__


def _masked_headers(headers: Mapping[str, str], mask: Mask) -> CIMultiDictProxy[str]:
    # items() keeps repeated headers (two Set-Cookie) apart.
    return CIMultiDictProxy(
        CIMultiDict((mask.text(name), mask.text(value)) for name, value in headers.items())
    )


def request_id(headers: Mapping[str, str]) -> str | None:
    """The answer's request id, from the first of ``REQUEST_ID_HEADERS`` that it has."""
    for name in REQUEST_ID_HEADERS:
        value = headers.get(name)
        if value:
            # A header is one line, but an odd proxy may send anything: keep it short.
            return value.strip()[:100]
    return None


def _attach_answer(
    error: NotifyError, raw: bytes, headers: CIMultiDictProxy[str], request_id: str | None
) -> None:
    error.body = raw
    error.headers = headers
    error.request_id = request_id


def _server_message(raw: bytes, mask: Mask) -> str:
    """The server's explanation of an error: JSON ``message`` or ``error``, or a snippet."""
    try:
        body = decode_json(raw)
    except InvalidResponseError:
        return mask.text(describe_body(raw))
    if isinstance(body, dict):
        for field in ("message", "error", "detail"):
            value = body.get(field)
            if isinstance(value, dict):
                value = value.get("message")
            if isinstance(value, str) and value.strip():
                # Masked whole, then cut: a cut through a key would hide it from the mask.
                return mask.text(value.strip())[:_SERVER_MESSAGE_CHARS]
    return mask.text(describe_body(raw))


def _status_advice(
    status: int, retry_after: float | None, headers: Mapping[str, str]
) -> str | None:
    if status == 429:
        wait = (
            "slow down and retry later" if retry_after is None else f"retry after {retry_after:g}s"
        )
        return f"rate limited; {wait}"
    if status == 503 and retry_after is not None:
        return f"Notify is unavailable; retry after {retry_after:g}s"
    if 300 <= status < 400:
        return (
            f"unexpected redirect to {headers.get('Location', '?')!r}; check base_url "
            "(redirects are not followed, so that the key does not travel elsewhere)"
        )
    return _STATUS_ADVICE.get(status) or (
        "Notify or a proxy in front of it failed" if status >= 500 else None
    )


_STATUS_ADVICE = {
    403: "the key may not do this; several keys per account need the Pro plan",
    404: (
        "check base_url (it should end in /api/public/v1, as https://notify.cx/api/public/v1 "
        "does), or any id you passed"
    ),
}


def _describe_bad_envelope(method: str, path: str, body: object, mask: Mask) -> str:
    if isinstance(body, dict):
        detail = body.get("message") or body.get("error")
        suffix = f": {mask.text(str(detail))[:_ENVELOPE_DETAIL_CHARS]}" if detail else ""
        return (
            f"{method} {path}: the server answered 2xx with success={body.get('success')!r}{suffix}"
        )
    return (
        f"{method} {path}: expected a JSON object, got "
        f"{'null' if body is None else type(body).__name__}"
    )
