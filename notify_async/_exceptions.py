r"""Every error notify-async raises.

The tree, so a reader sees it before the code::

    NotifyError
     ├── CredentialError            the provider could not give a usable key
     │    └── KeyStoreError         a rotated key could not be persisted (the key is attached)
     ├── APIStatusError             the server answered with a non-2xx status
     │    ├── BadRequestError             400
     │    ├── AuthenticationError         401 (only rejected keys for the whole grace window)
     │    ├── PermissionDeniedError       403
     │    ├── NotFoundError               404
     │    ├── RateLimitError              429 (``retry_after``)
     │    └── InternalServerError         >= 500
     ├── APIConnectionError         no usable answer: refused, reset, DNS, TLS
     │    └── APITimeoutError       an attempt ran out of time
     ├── OutcomeUnknownError        a non-idempotent call (send, regenerate) failed in a way
     │                              that leaves open whether it took effect; never retried
     └── InvalidResponseError       a 2xx whose body is not what the API promises, or a body
                                    larger than ``max_response_bytes``

An ``OutcomeUnknownError`` is also an instance of the class the failure would otherwise have
had, so that ``except InternalServerError`` or ``except APITimeoutError`` keeps catching it::

    OutcomeUnknownServerError            (OutcomeUnknownError, InternalServerError)
    OutcomeUnknownTimeoutError           (OutcomeUnknownError, APITimeoutError)
    OutcomeUnknownConnectionError        (OutcomeUnknownError, APIConnectionError)
    OutcomeUnknownInvalidResponseError   (OutcomeUnknownError, InvalidResponseError)

Bad arguments (an empty key, plain ``http://`` to a remote host, ``api_key`` together
with ``credentials``) raise ``ValueError`` at construction instead.

No message here ever contains an API key: messages are built from statuses, paths,
field names and the server's own words, which are redacted before use. The same goes for
every attribute: ``headers`` and ``body`` hold the server's answer with every key the
client has held masked, whether written literally or escaped as JSON (``\u0061``,
``\/``), URL (``%61``) or HTML (``&#97;``, ``&#x61;``).
"""

from __future__ import annotations

__all__ = [
    "APIConnectionError",
    "APIStatusError",
    "APITimeoutError",
    "AuthenticationError",
    "BadRequestError",
    "CredentialError",
    "InternalServerError",
    "InvalidResponseError",
    "KeyStoreError",
    "NotFoundError",
    "NotifyError",
    "OutcomeUnknownConnectionError",
    "OutcomeUnknownError",
    "OutcomeUnknownInvalidResponseError",
    "OutcomeUnknownServerError",
    "OutcomeUnknownTimeoutError",
    "PermissionDeniedError",
    "RateLimitError",
]

from collections.abc import Mapping
from types import MappingProxyType
from typing import Protocol


class RotatedKey(Protocol):
    """What ``KeyStoreError.result`` holds: a ``RegeneratedApiKey``.

    Named by shape here, so that the errors module depends on nothing (the models raise
    these errors, so importing the models here would close an import cycle).
    """

    @property
    def id(self) -> str:
        """The key's id."""
        ...

    @property
    def api_key(self) -> str:
        """The new key."""
        ...

    @property
    def message(self) -> str:
        """The server's message."""
        ...


_NO_HEADERS: Mapping[str, str] = MappingProxyType({})


class NotifyError(Exception):
    """Base class of every error raised by notify-async.

    ``attempts`` is how many requests the failed call tried to send: the first, each
    retry and the auth replay, counting a try whose connection failed. It is 0 for an
    error raised before any request (a missing key, say).
    """

    attempts: int = 0
    retryable: bool = False
    """Whether the call's retry policy allowed retrying this failure (the client already
    retried it, up to ``max_retries``)."""
    request_id: str | None = None
    """The id the server (or a proxy in front of it) gave the request, from the first of
    the response headers ``x-request-id``, ``request-id``, ``x-amzn-requestid`` and
    ``cf-ray`` that it sent; ``None`` without an answer. Quote it to Notify's support."""
    headers: Mapping[str, str] = _NO_HEADERS
    """The response headers (case-insensitive), every key masked; empty without an answer."""
    body: bytes = b""
    """The start of the response body as received (its first 64 KiB), every key masked;
    empty without an answer."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class CredentialError(NotifyError):
    """The credential provider could not supply a usable API key.

    Raised for an unset ``NOTIFY_API_KEY``, a missing or empty key file, a provider
    whose ``load()`` failed or overran ``load_timeout``, or a loaded key that is empty or
    holds a character an HTTP header cannot carry.

    ``pending`` is True when the source answered but holds no complete key yet (an empty
    file being rewritten in place, a Redis hash not written yet): after a 401 the client
    looks again within its ``rotation_grace`` window instead of failing at once. It is
    False when the source could not be reached or is misconfigured.
    """

    def __init__(self, message: str, *, pending: bool = False) -> None:
        super().__init__(message)
        self.pending = pending


class KeyStoreError(CredentialError):
    """A rotated key was adopted in memory but the provider failed to ``store()`` it.

    The client keeps using the new key, and the key is not lost: it is in ``result``.
    Persist it yourself, because other holders of the old key cannot recover until it
    is published where they load from.
    """

    def __init__(self, message: str, *, result: RotatedKey) -> None:
        super().__init__(message)
        self.result = result


class APIStatusError(NotifyError):
    """The server answered with an error status.

    Attributes:
        status_code: the HTTP status.
        server_message: the server's explanation (JSON ``message``/``error``, or a snippet
            of the body), redacted.
        method: the HTTP method of the call.
        path: the API path of the call, e.g. ``/api_keys``.
        retry_after: the server's ``Retry-After`` in seconds, when it sent one.
    """

    def __init__(
        self,
        message: str,
        *,
        status_code: int,
        server_message: str,
        method: str,
        path: str,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.server_message = server_message
        self.method = method
        self.path = path
        self.retry_after = retry_after


class BadRequestError(APIStatusError):
    """400: the server rejected the request's content. Fix the arguments; do not retry."""


class AuthenticationError(APIStatusError):
    """401: the API key was rejected, even after reloading it from the provider.

    After a 401 the client replays the call with any newer key it holds or reloads (once
    per rotation, for every call rejected together); this error means the provider
    offered only rejected keys for ``rotation_grace`` seconds, or that five newer keys in
    a row were rejected too.
    """


class PermissionDeniedError(APIStatusError):
    """403: the key is valid but may not do this (e.g. multiple keys need the Pro plan)."""


class NotFoundError(APIStatusError):
    """404: the resource (for example a key id) does not exist, or ``base_url`` is wrong."""


class RateLimitError(APIStatusError):
    """429: too many requests.

    ``retry_after`` is the server's ``Retry-After`` in seconds, when it sent one. The client
    retries 429s by itself unless the wait is longer than ``max_retry_after``; then it
    raises this so that you decide when to come back. (A 503 with a long ``Retry-After``
    raises ``InternalServerError``, its status's class, with ``retry_after`` set.)
    """


class InternalServerError(APIStatusError):
    """A 5xx status: the server, or a proxy in front of it, failed."""


class APIConnectionError(NotifyError):
    """The request got no usable answer: connection refused or reset, DNS, TLS.

    ``request_sent`` is False when no byte of the request was written: the call timed out
    waiting for a free connection in the pool, or while connecting, or the connection
    could not be established. The server cannot have acted on it, so even a send is
    retried. ``transient`` is False when trying again cannot help (a certificate that
    failed verification fails the same way every time).
    """

    def __init__(self, message: str, *, request_sent: bool, transient: bool = True) -> None:
        super().__init__(message)
        self.request_sent = request_sent
        self.transient = transient


class APITimeoutError(APIConnectionError):
    """An attempt did not complete within the client's ``timeout`` (or ``connect_timeout``)."""


class InvalidResponseError(NotifyError):
    """A 2xx response whose body is not what the API promises.

    For example an HTML page from a proxy, ``success: false``, malformed JSON, a missing or
    mistyped field (the message names the field path, ``data[0].createdAt``), or a body
    larger than the client's ``max_response_bytes`` (the message names the limit).
    """


class OutcomeUnknownError(NotifyError):
    """A send or a regenerate failed in a way that leaves open whether it took effect.

    This follows a disconnect after the request was sent, a timeout after it was sent, a
    5xx other than 503, or a 2xx whose body is unusable. Such calls are never retried
    blindly: a second send delivers a second email, and a second regenerate invalidates the
    first new key.

    The error raised is also an instance of the class the failure would otherwise have had
    (``OutcomeUnknownServerError`` is an ``InternalServerError``, ``OutcomeUnknownTimeoutError``
    an ``APITimeoutError``, and so on), with that class's attributes. ``__cause__`` holds the
    underlying error; ``status_code`` is set when the failure was an HTTP status.
    """

    def __init__(
        self, message: str, *, method: str, path: str, status_code: int | None = None
    ) -> None:
        # NotifyError's, not super(): a subclass's other base takes other arguments, and
        # its attributes are copied from the underlying error instead (see _errors).
        NotifyError.__init__(self, message)
        self.method = method
        self.path = path
        self.status_code = status_code


# status_code is int | None on OutcomeUnknownError and int here: always an int in this class.
class OutcomeUnknownServerError(OutcomeUnknownError, InternalServerError):  # type: ignore[misc]
    """The outcome is unknown after a 5xx other than 503.

    Both an ``OutcomeUnknownError`` and an ``InternalServerError``, with ``status_code``,
    ``server_message``, ``retry_after``, ``request_id``, ``headers`` and ``body``.
    """


class OutcomeUnknownConnectionError(OutcomeUnknownError, APIConnectionError):
    """The outcome is unknown after the connection failed once the request was sent.

    Both an ``OutcomeUnknownError`` and an ``APIConnectionError`` (``request_sent`` is True).
    """


class OutcomeUnknownTimeoutError(OutcomeUnknownError, APITimeoutError):
    """The outcome is unknown after a timeout once the request was sent.

    Both an ``OutcomeUnknownError`` and an ``APITimeoutError`` (``request_sent`` is True).
    """


class OutcomeUnknownInvalidResponseError(OutcomeUnknownError, InvalidResponseError):
    """The outcome is unknown after a send answered 2xx with a body that is not usable.

    For example HTML, an empty body, ``message: null``, or a body over
    ``max_response_bytes``. Both an ``OutcomeUnknownError`` and an ``InvalidResponseError``.
    """
