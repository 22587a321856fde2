"""A local stand-in for the Notify API: a real ``aiohttp.web`` server with inspectable state.

Everything a test needs to observe or steer lives on ``LocalNotifyServer``:

* the key store (``keys``, ``add_key``, ``rotate``, ``deactivate``, ``key_id_of``),
* what the server accepted (``emails``) and saw (``request_counts``, ``auth_failures``),
* queued faults per route (``inject``, ``clear_faults``).

Every API request goes through one pipeline, ``_endpoint``: count the request, take the
route's next fault, apply it (answer with a status, sleep, drop the connection), check the
``x-api-key`` header, run the handler, and drop the connection afterwards if the fault says
so. Handlers only validate the body and change state.

Other processes reach the same state through the control API under ``/_control``, and
``ControlClient`` wraps it.
"""

from __future__ import annotations

__all__ = [
    "ROUTES",
    "AcceptedEmail",
    "ControlClient",
    "Fault",
    "LocalNotifyServer",
    "StoredKey",
]

import asyncio
import base64
import binascii
import collections
import contextlib
import json
import os
import secrets
import uuid
from collections.abc import Awaitable, Callable, Mapping
from datetime import datetime, timedelta, timezone
from http import HTTPStatus
from pathlib import Path
from types import TracebackType
from typing import Any, Literal

import aiohttp
import attrs
from aiohttp import web
from multidict import CIMultiDict
from yarl import URL

from notify_async._emails import check_recipient
from notify_async._files import write_atomically

API_PREFIX = "/api/public/v1"
CONTROL_PREFIX = "/_control"

#: The route names accepted by ``LocalNotifyServer.inject`` and used as keys of
#: ``request_counts``: the HTTP method and the path below ``/api/public/v1``.
ROUTES: tuple[str, ...] = (
    "GET /api_keys",
    "POST /api_keys/regenerate",
    "POST /send-email",
    "POST /send-email-from-template",
)

FaultKind = Literal["status", "delay", "delay_after", "drop_before", "drop_after"]

_Handler = Callable[[web.Request, str], Awaitable[web.StreamResponse]]

_JSON = "application/json"
# The success answer of both send endpoints never varies: encode it once, since the
# send endpoints are what benchmarks hammer.
_SENT = json.dumps({"success": True, "message": "Email sent successfully"}).encode()
_REGENERATED_MESSAGE = (
    "API key regenerated successfully. Make sure to update your x-api-key header."
)
_UNAUTHORIZED = json.dumps(
    {
        "success": False,
        "message": "Invalid API key. Send an active key in the x-api-key header.",
    }
).encode()
_NO_BODY_STATUSES = frozenset({204, 304})


def _now() -> datetime:
    # Truncated to milliseconds, the precision of the JSON timestamps, so a value read
    # back from the API compares equal to the one held here.
    moment = datetime.now(timezone.utc)
    return moment.replace(microsecond=moment.microsecond // 1000 * 1000)


def _iso(moment: datetime) -> str:
    """Format like Notify: ISO-8601 in UTC with a ``Z`` suffix and milliseconds."""
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def _new_secret() -> str:
    # 24 random bytes are exactly 32 url-safe base64 characters.
    return "nk_" + secrets.token_urlsafe(24)


@attrs.frozen
class StoredKey:
    """One API key of the account, as the server holds it.

    ``secret`` is the key's current value; it changes on every regeneration, while
    ``id`` stays the same.
    """

    id: str
    name: str
    secret: str = attrs.field(repr=False)
    created_at: datetime
    updated_at: datetime
    active: bool = True

    @property
    def prefix(self) -> str:
        """The part of the key that ``GET /api_keys`` shows: 8 characters and ``...``."""
        return self.secret[:8] + "..."

    def to_api_json(self) -> dict[str, Any]:
        """Return the key as ``GET /api_keys`` lists it, without the secret."""
        return {
            "id": self.id,
            "name": self.name,
            "createdAt": _iso(self.created_at),
            "updatedAt": _iso(self.updated_at),
            "active": self.active,
            "prefix": self.prefix,
        }


@attrs.frozen
class AcceptedEmail:
    """An email the server accepted, from ``/send-email`` or ``/send-email-from-template``.

    Fields the request did not carry are ``None``: ``subject`` and ``message`` for a
    template email, ``template_id`` for a plain one. ``key_id`` is the id of the API key
    that sent it.
    """

    to: str
    subject: str | None
    message: str | None
    key_id: str
    name: str | None = None
    template_id: str | None = None
    # A mapping cannot be hashed; leave it out of the hash so the class stays hashable.
    variables: Mapping[str, str] | None = attrs.field(default=None, hash=False)
    from_: str | None = None

    def to_json(self) -> dict[str, Any]:
        """Return the email as the control API reports it."""
        return {
            "to": self.to,
            "subject": self.subject,
            "message": self.message,
            "name": self.name,
            "templateId": self.template_id,
            "variables": None if self.variables is None else dict(self.variables),
            "from": self.from_,
            "key_id": self.key_id,
        }


@attrs.frozen
class Fault:
    """A misbehaviour queued for exactly one upcoming request on one route.

    Build one with ``Fault.status``, ``Fault.delay``, ``Fault.delay_after``,
    ``Fault.drop_before`` or ``Fault.drop_after`` and queue it with
    ``LocalNotifyServer.inject``. All faults but ``delay_after`` and ``drop_after`` act
    before the API key is checked and before the request is handled.
    """

    kind: FaultKind
    code: int = 0
    #: Response headers of a ``status`` fault, Content-Type included.
    headers: tuple[tuple[str, str], ...] = ()
    body: bytes = b""
    seconds: float = 0.0

    @classmethod
    def status(
        cls,
        code: int,
        *,
        headers: Mapping[str, str] | None = None,
        body: str | bytes | dict[str, Any] | list[Any] | None = None,
    ) -> Fault:
        """Answer with this status, headers and body, and do not handle the request.

        A dict or list body is sent as JSON, a str as UTF-8 text. Without a body the
        answer is Notify's error shape, ``{"success": false, "message": <reason phrase>}``.
        A ``Content-Type`` in ``headers`` wins over the one guessed from the body, so
        ``body="<html>...", headers={"Content-Type": "text/html"}`` mimics a proxy page.
        """
        if not 200 <= code <= 599:
            raise ValueError(f"a fault status must be between 200 and 599, not {code}")
        content_type: str | None
        if body is None:
            if code in _NO_BODY_STATUSES:
                content_type, raw = None, b""
            else:
                try:
                    phrase = HTTPStatus(code).phrase
                except ValueError:  # a code HTTP gives no name, such as 299 or 520
                    phrase = "Error"
                content_type = _JSON
                raw = json.dumps({"success": False, "message": phrase}).encode()
        elif isinstance(body, (dict, list)):
            content_type, raw = _JSON, json.dumps(body).encode()
        elif isinstance(body, str):
            content_type, raw = "text/plain; charset=utf-8", body.encode()
        else:
            content_type, raw = "application/octet-stream", bytes(body)
        if raw and code in _NO_BODY_STATUSES:
            raise ValueError(f"HTTP allows no body with status {code}")
        if not raw:
            content_type = None  # nothing to describe
        given = dict(headers or {})
        if content_type is not None and not any(h.lower() == "content-type" for h in given):
            given["Content-Type"] = content_type
        return cls(kind="status", code=code, headers=tuple(given.items()), body=raw)

    @classmethod
    def delay(cls, seconds: float) -> Fault:
        """Sleep this long, then handle the request normally.

        A client whose timeout is shorter gives up, but the server still handles the
        request afterwards (an email is still recorded), as a slow real server would.
        """
        if seconds < 0:
            raise ValueError(f"a delay cannot be negative: {seconds}")
        return cls(kind="delay", seconds=float(seconds))

    @classmethod
    def delay_after(cls, seconds: float) -> Fault:
        """Handle the request fully, then wait this long before answering.

        The work is done (an email recorded, a key regenerated and the old one dead) while
        the client still waits: the window in which other requests meet its effects.
        """
        if seconds < 0:
            raise ValueError(f"a delay cannot be negative: {seconds}")
        return cls(kind="delay_after", seconds=float(seconds))

    @classmethod
    def drop_before(cls) -> Fault:
        """Close the connection without handling the request or answering it.

        The client sees a disconnect; the server changes nothing.
        """
        return cls(kind="drop_before")

    @classmethod
    def drop_after(cls) -> Fault:
        """Handle the request fully, then close the connection without answering.

        The client sees a disconnect although the email was recorded or the key was
        regenerated: the outcome the client cannot know.
        """
        return cls(kind="drop_after")

    def to_json(self) -> dict[str, Any]:
        """Return the fault in the form ``POST /_control/faults`` takes."""
        if self.kind in ("delay", "delay_after"):
            return {"kind": self.kind, "seconds": self.seconds}
        if self.kind != "status":
            return {"kind": self.kind}
        encoded: dict[str, Any] = {
            "kind": "status",
            "code": self.code,
            "headers": dict(self.headers),
        }
        try:
            encoded["body"] = self.body.decode()
        except UnicodeDecodeError:
            encoded["body_base64"] = base64.b64encode(self.body).decode()
        return encoded

    @classmethod
    def from_json(cls, data: object) -> Fault:
        """Read a fault in the form ``Fault.to_json`` writes; raise ValueError if malformed."""
        if not isinstance(data, dict):
            raise ValueError("a fault must be a JSON object")
        kind = data.get("kind")
        if kind == "drop_before":
            return cls.drop_before()
        if kind == "drop_after":
            return cls.drop_after()
        if kind in ("delay", "delay_after"):
            seconds = data.get("seconds")
            if not isinstance(seconds, (int, float)) or isinstance(seconds, bool):
                raise ValueError("a delay fault needs a number of seconds")
            return cls.delay(seconds) if kind == "delay" else cls.delay_after(seconds)
        if kind == "status":
            return cls._status_from_json(data)
        raise ValueError(f"unknown fault kind {kind!r}")

    @classmethod
    def _status_from_json(cls, data: dict[str, Any]) -> Fault:
        code = data.get("code")
        if not isinstance(code, int) or isinstance(code, bool):
            raise ValueError("a status fault needs an integer code")
        headers = data.get("headers") or {}
        if not isinstance(headers, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in headers.items()
        ):
            raise ValueError("fault headers must be an object of strings")
        body: str | bytes | dict[str, Any] | list[Any] | None = data.get("body")
        if "body_base64" in data:
            try:
                body = base64.b64decode(data["body_base64"], validate=True)
            except (binascii.Error, TypeError) as exc:
                raise ValueError("body_base64 is not valid base64") from exc
        elif body is not None and not isinstance(body, (str, dict, list)):
            raise ValueError("a fault body must be a string, an object, an array or null")
        return cls.status(code, headers=headers, body=body)


def _json_response(status: int, payload: object) -> web.Response:
    return web.Response(status=status, body=json.dumps(payload).encode(), content_type=_JSON)


def _error(status: int, message: str) -> web.Response:
    return _json_response(status, {"success": False, "message": message})


class _BadRequestError(Exception):
    """A request body the handler rejects with 400 and this message."""


async def _json_object(request: web.Request) -> dict[str, Any]:
    try:
        data = json.loads(await request.read())
    except (ValueError, UnicodeDecodeError) as exc:
        raise _BadRequestError("Invalid JSON body") from exc
    if not isinstance(data, dict):
        raise _BadRequestError("The request body must be a JSON object")
    return data


def _missing(data: Mapping[str, Any], fields: tuple[str, ...]) -> web.Response | None:
    # Blank counts as missing, as the client's own check has it (notify_async._emails).
    missing = [f for f in fields if not isinstance(data.get(f), str) or not data[f].strip()]
    if missing:
        return _error(400, "Missing required fields: " + ", ".join(missing))
    return None


def _recipient(data: Mapping[str, Any]) -> str:
    # The client's own check, so that a test against this server catches what it catches.
    try:
        return check_recipient(data["to"])
    except ValueError as exc:
        raise _BadRequestError(f"Invalid field: {exc}") from None


def _optional_str(data: Mapping[str, Any], field: str) -> str | None:
    value = data.get(field)
    if value is not None and not isinstance(value, str):
        raise _BadRequestError(f"Invalid field: {field} must be a string")
    if value is not None and not value.strip():
        raise _BadRequestError(f"Invalid field: {field} must not be blank")
    return value


def _drop_connection(request: web.Request) -> web.StreamResponse:
    """Close the client's connection at once, with no response sent.

    aiohttp then fails to write the response we return, takes that ConnectionError for
    a client that went away and ends the connection quietly (a debug log line only).
    Raising instead would be logged as an unhandled error and answered with a 500.
    """
    transport = request.transport
    if transport is not None:
        transport.abort()
    return web.Response()


class LocalNotifyServer:
    """A local Notify API on ``host:port`` (an ephemeral port by default).

    It starts with ``keys`` API keys; the first is the primary key, whose current value
    is ``api_key``. Use it as an async context manager, or call ``start`` and ``close``::

        async with LocalNotifyServer() as server:
            ...  # talk to server.base_url with server.api_key

    With ``key_file``, the primary key's value is written to that file (mode 0600) on
    start and again whenever ``rotate`` changes it, the way an operator would deploy a
    rotated key. A regeneration through the API does not touch the file: storing the
    new key is the caller's job.
    """

    def __init__(
        self,
        *,
        keys: int = 1,
        host: str = "127.0.0.1",
        port: int = 0,
        key_file: str | os.PathLike[str] | None = None,
    ) -> None:
        if keys < 1:
            raise ValueError("the account needs at least one key")
        self._host = host
        self._port = port
        self._key_file = Path(key_file) if key_file is not None else None
        self._keys: dict[str, StoredKey] = {}
        self._id_by_secret: dict[str, str] = {}
        self._faults: dict[str, collections.deque[Fault]] = {r: collections.deque() for r in ROUTES}
        self._runner: web.AppRunner | None = None
        self._base: URL | None = None
        # Set on close so that pending delay faults stop sleeping and shutdown is quick.
        self._closing: asyncio.Event | None = None

        #: Every email the server accepted, oldest first.
        self.emails: list[AcceptedEmail] = []
        #: Requests that reached each route, including those answered 401 or by a fault.
        self.request_counts: collections.Counter[str] = collections.Counter()
        #: 401 answers served, injected ones included.
        self.auth_failures = 0
        #: 401 answers served, per route.
        self.auth_failures_by_route: collections.Counter[str] = collections.Counter()
        #: The headers of every request that reached a route, as (route, headers), oldest
        #: first; ``x-api-key`` is left out, so that a test never prints a key by accident.
        self.received_headers: list[tuple[str, dict[str, str]]] = []

        for _ in range(keys):
            self.add_key()

    # -- keys -------------------------------------------------------------------------

    @property
    def keys(self) -> list[StoredKey]:
        """All keys of the account, the primary key first."""
        return list(self._keys.values())

    @property
    def primary_key_id(self) -> str:
        """The id of the primary key, the first one created."""
        return next(iter(self._keys))

    @property
    def api_key(self) -> str:
        """The current value of the primary key."""
        return self._keys[self.primary_key_id].secret

    def add_key(self, name: str | None = None) -> str:
        """Create an active key and return its value; ``name`` defaults to ``API key N``."""
        now = _now()
        key = StoredKey(
            id=str(uuid.uuid4()),
            name=name if name is not None else f"API key {len(self._keys) + 1}",
            secret=_new_secret(),
            created_at=now,
            updated_at=now,
        )
        self._keys[key.id] = key
        self._id_by_secret[key.secret] = key.id
        return key.secret

    def key_id_of(self, secret: str) -> str:
        """Return the id of the key whose current value is ``secret``; KeyError if none."""
        return self._id_by_secret[secret]

    def rotate(self, key_id: str | None = None) -> str:
        """Regenerate a key as an operator would in the dashboard; return its new value.

        ``None`` means the primary key. The old value stops working at once. Raises
        KeyError for an unknown id.
        """
        new_secret = self._regenerate(key_id if key_id is not None else self.primary_key_id)
        if self._key_file is not None and key_id in (None, self.primary_key_id):
            self._write_key_file()
        return new_secret

    def deactivate(self, key_id: str) -> None:
        """Mark a key inactive: requests carrying it get 401 from now on."""
        self._keys[key_id] = attrs.evolve(self._keys[key_id], active=False, updated_at=_now())

    def _regenerate(self, key_id: str) -> str:
        old = self._keys[key_id]
        # Two rotations within one millisecond must still move updatedAt forward, so a
        # client comparing timestamps sees every change.
        updated_at = max(_now(), old.updated_at + timedelta(milliseconds=1))
        new = attrs.evolve(old, secret=_new_secret(), updated_at=updated_at)
        del self._id_by_secret[old.secret]
        self._id_by_secret[new.secret] = key_id
        self._keys[key_id] = new
        return new.secret

    def _write_key_file(self) -> None:
        assert self._key_file is not None  # noqa: S101 - callers check it  # nosec B101
        # A reader never sees a half-written key, and a crash never leaves an empty file.
        write_atomically(self._key_file, self.api_key + "\n")

    # -- faults and counters ------------------------------------------------------------

    def inject(self, route: str, *faults: Fault) -> None:
        """Queue faults on a route; each applies to one upcoming request, first in first out.

        ``route`` is one of ``ROUTES``, such as ``"POST /send-email"``.
        """
        if route not in self._faults:
            raise ValueError(f"unknown route {route!r}; expected one of {', '.join(ROUTES)}")
        self._faults[route].extend(faults)

    def clear_faults(self) -> None:
        """Drop every fault still queued."""
        for queue in self._faults.values():
            queue.clear()

    def pending_faults(self, route: str) -> int:
        """How many faults are still queued on a route."""
        return len(self._faults[route])

    def reset_counters(self) -> None:
        """Zero ``request_counts``, the auth failure counts and ``received_headers``.

        ``emails`` stays.
        """
        self.request_counts.clear()
        self.received_headers.clear()
        self.auth_failures = 0
        self.auth_failures_by_route.clear()

    # -- lifecycle -----------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        """The API root, such as ``http://127.0.0.1:PORT/api/public/v1``."""
        return str(self._started_base() / API_PREFIX.lstrip("/"))

    @property
    def control_url(self) -> str:
        """The root of the control API, such as ``http://127.0.0.1:PORT/_control``."""
        return str(self._started_base() / CONTROL_PREFIX.lstrip("/"))

    @property
    def port(self) -> int:
        """The port the server listens on."""
        port = self._started_base().port
        assert port is not None  # noqa: S101 - URL.build was given one  # nosec B101
        return port

    def _started_base(self) -> URL:
        if self._base is None:
            raise RuntimeError("the server is not running; call start() first")
        return self._base

    async def start(self) -> None:
        """Bind the socket and start serving."""
        if self._runner is not None:
            raise RuntimeError("the server is already running")
        self._closing = asyncio.Event()
        runner = web.AppRunner(
            self._make_app(),
            # Access logs would dominate the cost of a request in benchmarks.
            access_log=None,
            handle_signals=False,
            # A bound on waiting for in-flight handlers at close; delays end early anyway.
            shutdown_timeout=2.0,
        )
        # The key file is written before the port opens: whoever sees the port open (a
        # user's second shell, a test waiting on it) may read the file at once.
        if self._key_file is not None:
            self._write_key_file()
        await runner.setup()
        try:
            site = web.TCPSite(runner, self._host, self._port)
            await site.start()
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        # With port 0 only the bound socket knows the port; a host name may also have
        # resolved to several sockets, so take host and port from the same one.
        host, port = runner.addresses[0][:2]
        self._base = URL.build(scheme="http", host=host, port=port)

    async def close(self) -> None:
        """Stop serving and close every connection. Safe to call twice."""
        runner, self._runner = self._runner, None
        if runner is None:
            return
        if self._closing is not None:
            self._closing.set()
        await runner.cleanup()

    async def __aenter__(self) -> LocalNotifyServer:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    # -- HTTP ------------------------------------------------------------------------------

    def _make_app(self) -> web.Application:
        app = web.Application()
        api: list[tuple[str, _Handler]] = [
            ("GET /api_keys", self._list_keys),
            ("POST /api_keys/regenerate", self._regenerate_key),
            ("POST /send-email", self._send_email),
            ("POST /send-email-from-template", self._send_template_email),
        ]
        for route, handler in api:
            method, path = route.split(" ", 1)
            # add_route, not add_get: add_get would also answer HEAD under the GET count.
            app.router.add_route(method, API_PREFIX + path, self._endpoint(route, handler))
        app.router.add_route("GET", CONTROL_PREFIX + "/state", self._control_state)
        app.router.add_route("POST", CONTROL_PREFIX + "/rotate", self._control_rotate)
        app.router.add_route("POST", CONTROL_PREFIX + "/faults", self._control_faults)
        app.router.add_route("POST", CONTROL_PREFIX + "/reset", self._control_reset)
        return app

    def _endpoint(
        self, route: str, handler: _Handler
    ) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
        faults = self._faults[route]

        async def endpoint(request: web.Request) -> web.StreamResponse:
            self.request_counts[route] += 1
            self.received_headers.append(
                (route, {k: v for k, v in request.headers.items() if k.lower() != "x-api-key"})
            )
            fault = faults.popleft() if faults else None
            if fault is not None:
                if fault.kind == "status":
                    return self._fault_response(route, fault)
                if fault.kind == "drop_before":
                    return _drop_connection(request)
                if fault.kind == "delay":
                    # Read the body first: a client that gives up during the delay takes
                    # the unread body with it, and a slow server has already received it.
                    try:
                        await request.read()
                    except ConnectionError:
                        return _drop_connection(request)
                    await self._sleep(fault.seconds)
            key_id = self._id_by_secret.get(request.headers.get("x-api-key", ""))
            if key_id is None or not self._keys[key_id].active:
                response: web.StreamResponse = self._unauthorized(route)
            else:
                try:
                    response = await handler(request, key_id)
                except _BadRequestError as exc:
                    response = _error(400, str(exc))
            if fault is not None and fault.kind == "drop_after":
                return _drop_connection(request)
            if fault is not None and fault.kind == "delay_after":
                await self._sleep(fault.seconds)
            return response

        return endpoint

    def _unauthorized(self, route: str) -> web.Response:
        self.auth_failures += 1
        self.auth_failures_by_route[route] += 1
        return web.Response(status=401, body=_UNAUTHORIZED, content_type=_JSON)

    def _fault_response(self, route: str, fault: Fault) -> web.Response:
        if fault.code == 401:
            self.auth_failures += 1
            self.auth_failures_by_route[route] += 1
        return web.Response(status=fault.code, headers=CIMultiDict(fault.headers), body=fault.body)

    async def _sleep(self, seconds: float) -> None:
        assert self._closing is not None  # noqa: S101 - set by start()  # nosec B101
        # The timeout is the normal end of a delay; the event only cuts it short on close.
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self._closing.wait(), timeout=seconds)

    async def _list_keys(self, request: web.Request, key_id: str) -> web.StreamResponse:
        data = [key.to_api_json() for key in self._keys.values()]
        return _json_response(200, {"success": True, "data": data})

    async def _regenerate_key(self, request: web.Request, key_id: str) -> web.StreamResponse:
        data = await _json_object(request)
        target = data.get("keyId")
        if not isinstance(target, str) or not target:
            return _error(400, "Missing required field: keyId")
        if target not in self._keys:
            return _error(404, f"API key {target} not found")
        new_secret = self._regenerate(target)
        return _json_response(
            200,
            {
                "success": True,
                "message": _REGENERATED_MESSAGE,
                "data": {"id": target, "api_key": new_secret},
            },
        )

    async def _send_email(self, request: web.Request, key_id: str) -> web.StreamResponse:
        data = await _json_object(request)
        if (invalid := _missing(data, ("to", "subject", "message"))) is not None:
            return invalid
        self.emails.append(
            AcceptedEmail(
                to=_recipient(data),
                subject=data["subject"],
                message=data["message"],
                name=_optional_str(data, "name"),
                key_id=key_id,
            )
        )
        return web.Response(body=_SENT, content_type=_JSON)

    async def _send_template_email(self, request: web.Request, key_id: str) -> web.StreamResponse:
        data = await _json_object(request)
        if (invalid := _missing(data, ("templateId", "to"))) is not None:
            return invalid
        to = _recipient(data)
        variables = data.get("variables")
        if variables is not None and not (
            isinstance(variables, dict) and all(isinstance(v, str) for v in variables.values())
        ):
            return _error(400, "Invalid field: variables must be an object of strings")
        self.emails.append(
            AcceptedEmail(
                to=to,
                subject=None,
                message=None,
                template_id=data["templateId"],
                variables=variables,
                from_=_optional_str(data, "from"),
                key_id=key_id,
            )
        )
        return web.Response(body=_SENT, content_type=_JSON)

    # -- control API -------------------------------------------------------------------------

    def state(self, *, include_emails: bool = True) -> dict[str, Any]:
        """Return what the control API's ``GET /_control/state`` reports, as JSON data.

        Key values stay out of it, except ``api_key``, the primary key's current value,
        which a process driving the server needs after a rotation. Without
        ``include_emails`` the (after a benchmark, long) list of emails is left out and
        only ``emails_count`` tells how many there are.
        """
        state: dict[str, Any] = {
            "request_counts": {route: self.request_counts[route] for route in ROUTES},
            "auth_failures": self.auth_failures,
            "auth_failures_by_route": {r: self.auth_failures_by_route[r] for r in ROUTES},
            "emails_count": len(self.emails),
            "keys": [
                {"id": k.id, "name": k.name, "prefix": k.prefix, "active": k.active}
                for k in self._keys.values()
            ],
            "api_key": self.api_key,
            "pending_faults": {route: len(self._faults[route]) for route in ROUTES},
        }
        if include_emails:
            state["emails"] = [email.to_json() for email in self.emails]
        return state

    async def _control_state(self, request: web.Request) -> web.StreamResponse:
        include_emails = request.query.get("emails", "1") not in ("0", "false")
        return _json_response(200, self.state(include_emails=include_emails))

    async def _control_rotate(self, request: web.Request) -> web.StreamResponse:
        try:
            data = await _json_object(request) if request.can_read_body else {}
        except _BadRequestError as exc:
            return _error(400, str(exc))
        key_id = data.get("keyId")
        if key_id is not None and not isinstance(key_id, str):
            return _error(400, "keyId must be a string")
        if key_id is not None and key_id not in self._keys:
            return _error(404, f"API key {key_id} not found")
        return _json_response(200, {"api_key": self.rotate(key_id)})

    async def _control_faults(self, request: web.Request) -> web.StreamResponse:
        try:
            data = await _json_object(request)
        except _BadRequestError as exc:
            return _error(400, str(exc))
        route, raw_faults = data.get("route"), data.get("faults")
        if not isinstance(route, str) or route not in self._faults:
            return _error(400, f"route must be one of {', '.join(ROUTES)}")
        if not isinstance(raw_faults, list):
            return _error(400, "faults must be an array")
        try:
            faults = [Fault.from_json(raw) for raw in raw_faults]
        except ValueError as exc:
            return _error(400, str(exc))
        self.inject(route, *faults)
        return _json_response(200, {"pending": len(self._faults[route])})

    async def _control_reset(self, request: web.Request) -> web.StreamResponse:
        self.reset_counters()
        self.emails.clear()
        self.clear_faults()
        return _json_response(200, {"success": True})


class ControlClient:
    """Drive a ``LocalNotifyServer`` in another process through its control API.

    ``control_url`` is the one ``python -m notify_async.testing`` prints::

        async with ControlClient(control_url) as control:
            await control.inject("POST /send-email", Fault.status(503))
            new_key = await control.rotate()
            assert (await control.state())["emails_count"] == 0
    """

    def __init__(self, control_url: str) -> None:
        self._url = URL(control_url)
        self._session: aiohttp.ClientSession | None = None

    def _client(self) -> aiohttp.ClientSession:
        # Created lazily: a ClientSession must be made inside a running event loop.
        if self._session is None:
            self._session = aiohttp.ClientSession(raise_for_status=True)
        return self._session

    async def state(self, *, include_emails: bool = True) -> dict[str, Any]:
        """Fetch the counters, accepted emails and keys (see ``LocalNotifyServer.state``)."""
        url = self._url / "state"
        if not include_emails:
            url = url.with_query(emails="0")
        async with self._client().get(url) as response:
            state: dict[str, Any] = await response.json()
            return state

    async def rotate(self, key_id: str | None = None) -> str:
        """Regenerate a key as an operator would (the primary key by default); return it."""
        payload = {} if key_id is None else {"keyId": key_id}
        async with self._client().post(self._url / "rotate", json=payload) as response:
            new_key: str = (await response.json())["api_key"]
            return new_key

    async def inject(self, route: str, *faults: Fault) -> None:
        """Queue faults on a route of the remote server, as ``LocalNotifyServer.inject``."""
        payload = {"route": route, "faults": [fault.to_json() for fault in faults]}
        async with self._client().post(self._url / "faults", json=payload):
            pass

    async def reset(self) -> None:
        """Zero the counters, forget accepted emails and drop queued faults."""
        async with self._client().post(self._url / "reset"):
            pass

    async def close(self) -> None:
        """Close the HTTP session."""
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def __aenter__(self) -> ControlClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()
