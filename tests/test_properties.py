"""Whatever the server answers, a call returns a well-typed result or raises the documented error.

Hypothesis generates the bodies; the local Notify server serves each one over real HTTP
(``Fault.status(code, body=...)``), so the client's whole pipeline runs: read, classify,
decode, check the envelope, structure the model.

* A 2xx body, as any JSON value or any byte string: ``list``, ``regenerate`` and ``send``
  return a well-typed result or raise ``InvalidResponseError`` (``OutcomeUnknownError``
  for a regenerate, whose old key is most likely dead already). Nothing else escapes.
* A 4xx or 5xx answer, whatever its body and ``Retry-After``, is an ``APIStatusError`` of
  the class that status maps to, with that ``status_code``. For a send or a regenerate, a
  5xx other than 503 may have taken effect, so it arrives as ``OutcomeUnknownError`` with
  that status error as ``__cause__`` (see ``notify_async/_retry.py``).

One server, one event loop and one client serve the whole module (``max_retries=0``,
``rotation_grace=0``), so each example costs one request on a kept-alive connection.
"""

from __future__ import annotations

import asyncio
import json
import string
import traceback
from collections.abc import Callable, Coroutine, Iterator
from datetime import datetime, timedelta, timezone
from typing import Any, TypeVar

import pytest
from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st

from notify_async import (
    ApiKey,
    APIStatusError,
    AuthenticationError,
    BadRequestError,
    InternalServerError,
    InvalidResponseError,
    NotFoundError,
    NotifyClient,
    OutcomeUnknownError,
    PermissionDeniedError,
    RateLimitError,
    RegeneratedApiKey,
    SendEmailResult,
)
from notify_async.testing import Fault, LocalNotifyServer

T = TypeVar("T")

EXAMPLES = 500
"""Examples per property (the issue's bar)."""

PROPERTY = settings(
    max_examples=EXAMPLES,
    # Each example is a real HTTP round trip on a shared, noisy machine: time is not the
    # property under test, so no per-example deadline.
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

# An id no generated listing will give our own key, so that regenerate never adopts a key.
OTHER_KEY_ID = "00000000-other-key-not-ours-000000000000"


# -- the shared server, loop and client ------------------------------------------------------


class Harness:
    """A Notify server and a client on one private event loop, for a whole module."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.server = LocalNotifyServer()
        self.run(self.server.start())
        self.client = NotifyClient(
            self.server.api_key,
            base_url=self.server.base_url,
            max_retries=0,
            # A 401 then reloads the (static) key once and fails at once, instead of
            # polling the provider for a rotation that never comes.
            rotation_grace=0,
        )
        self.run(self.client.__aenter__())

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run ``coro`` to completion on the harness loop."""
        return self.loop.run_until_complete(coro)

    def serve_once(self, route: str, fault: Fault) -> None:
        """Make the next request on ``route`` get ``fault`` instead of the real answer."""
        self.server.clear_faults()
        self.server.inject(route, fault)

    def close(self) -> None:
        """Close the client, the server and the loop."""
        try:
            self.run(self.client.close())
            self.run(self.server.close())
        finally:
            self.loop.close()


@pytest.fixture(scope="module")
def harness() -> Iterator[Harness]:
    harness = Harness()
    try:
        yield harness
    finally:
        harness.close()


# -- the three calls, and what a well-typed result of each is ------------------------------


def _is_aware_datetime(value: object) -> bool:
    return isinstance(value, datetime) and value.utcoffset() is not None


def _check_listing(result: object) -> None:
    assert type(result) is list
    for key in result:
        assert type(key) is ApiKey
        assert type(key.id) is str
        assert type(key.name) is str
        assert type(key.prefix) is str
        assert type(key.active) is bool
        assert _is_aware_datetime(key.created_at)
        assert _is_aware_datetime(key.updated_at)


def _check_regenerated(result: object) -> None:
    assert type(result) is RegeneratedApiKey
    assert type(result.id) is str
    assert type(result.api_key) is str
    assert type(result.message) is str


def _check_sent(result: object) -> None:
    assert type(result) is SendEmailResult
    assert result.success is True  # the envelope check refuses anything else
    assert type(result.message) is str


# -- strategies -------------------------------------------------------------------------------

json_scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats()  # NaN and infinities included: Python's json reads and writes them
    | st.text()
)
json_values = st.recursive(
    json_scalars,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)


@st.composite
def mostly(draw: st.DrawFn, valid: st.SearchStrategy[Any]) -> Any:
    """A value of the right type nine times in ten, and otherwise any JSON value at all."""
    return draw(json_values) if draw(st.integers(0, 9)) == 0 else draw(valid)


@st.composite
def maybe_missing(draw: st.DrawFn, fields: st.SearchStrategy[dict[str, Any]]) -> dict[str, Any]:
    """An object from ``fields`` with, now and then, some fields left out or extra ones added."""
    obj = dict(draw(fields))
    if obj and draw(st.integers(0, 4)) == 0:
        for name in draw(st.sets(st.sampled_from(sorted(obj)), max_size=2)):
            del obj[name]
    obj.update(draw(st.dictionaries(st.text(max_size=8), json_values, max_size=2)))
    return obj


timestamps = st.builds(
    lambda moment, zone, zulu: (
        moment.replace(tzinfo=None).isoformat() + "Z"
        if zulu
        else moment.replace(tzinfo=zone).isoformat()
    ),
    st.datetimes(),
    st.sampled_from([None, timezone.utc, timezone(timedelta(hours=5, minutes=30))]),
    st.booleans(),
)
listed_key = maybe_missing(
    st.fixed_dictionaries(
        {
            "id": mostly(st.text()),
            "name": mostly(st.text()),
            "createdAt": mostly(timestamps | st.text(max_size=30)),
            "updatedAt": mostly(timestamps),
            "active": mostly(st.booleans()),
            "prefix": mostly(st.text()),
        }
    )
)
success = mostly(st.just(True))
listing_envelope = maybe_missing(
    st.fixed_dictionaries({"success": success, "data": mostly(st.lists(listed_key, max_size=3))})
)
regenerated_envelope = maybe_missing(
    st.fixed_dictionaries(
        {
            "success": success,
            "message": mostly(st.text()),
            "data": mostly(
                maybe_missing(
                    st.fixed_dictionaries({"id": mostly(st.text()), "api_key": mostly(st.text())})
                )
            ),
        }
    )
)
sent_envelope = maybe_missing(
    st.fixed_dictionaries({"success": success, "message": mostly(st.text())})
)


def json_bodies(envelope: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """Any JSON value, or (as often) an envelope close to what the call expects.

    Near-valid envelopes reach the typed paths; arbitrary JSON reaches everything else.
    """
    return st.one_of(json_values, envelope)


def byte_bodies(envelope: st.SearchStrategy[Any]) -> st.SearchStrategy[bytes]:
    """Any bytes, JSON cut short, or a JSON body in another encoding json.loads detects."""
    encoded = json_bodies(envelope).map(lambda value: json.dumps(value).encode())
    return st.one_of(
        st.binary(max_size=200),
        st.builds(lambda body, cut: body[:cut], encoded, st.integers(0, 200)),
        st.builds(
            lambda body, codec: json.dumps(body).encode(codec),
            json_bodies(envelope),
            st.sampled_from(["utf-8", "utf-16", "utf-32", "utf-8-sig"]),
        ),
    )


# -- the calls under test ------------------------------------------------------------


class Call:
    """One client call under test: its route, how to make it, how to check its result."""

    def __init__(
        self,
        name: str,
        route: str,
        invoke: Callable[[NotifyClient], Coroutine[Any, Any, object]],
        check: Callable[[object], None],
        envelope: st.SearchStrategy[Any],
    ) -> None:
        self.name = name
        self.route = route
        self.method = route.split(" ", 1)[0]
        self.invoke = invoke
        self.check = check
        self.envelope = envelope
        self.json_bodies = json_bodies(envelope)

    def __repr__(self) -> str:
        return self.name


async def _list(client: NotifyClient) -> object:
    return await client.api_keys.list()


async def _regenerate(client: NotifyClient) -> object:
    return await client.api_keys.regenerate(OTHER_KEY_ID)


async def _send(client: NotifyClient) -> object:
    return await client.emails.send(to="ada@example.com", subject="Hi", message="Hello")


CALLS = [
    Call("list", "GET /api_keys", _list, _check_listing, listing_envelope),
    Call(
        "regenerate",
        "POST /api_keys/regenerate",
        _regenerate,
        _check_regenerated,
        regenerated_envelope,
    ),
    Call("send", "POST /send-email", _send, _check_sent, sent_envelope),
]


# Bytes are not aimed at one call: any envelope, damaged or re-encoded, or noise.
any_byte_bodies = byte_bodies(st.one_of([call.envelope for call in CALLS]))

ok_statuses = st.integers(200, 299).filter(lambda code: code != 204)  # 204 has no body
error_statuses = st.one_of(
    st.sampled_from([400, 401, 403, 404, 408, 409, 422, 429, 500, 502, 503, 504]),
    st.integers(400, 599),
)
error_bodies = st.one_of(
    json_values,
    maybe_missing(
        st.fixed_dictionaries(
            {
                "success": st.just(False) | json_values,
                "message": mostly(st.text()),
                "error": mostly(st.text() | st.fixed_dictionaries({"message": mostly(st.text())})),
            }
        )
    ),
)
header_text = st.text(string.ascii_letters + string.digits + " ,:-+.", max_size=40)
retry_after_values = st.one_of(
    st.none(),
    header_text,
    st.floats(allow_nan=True, allow_infinity=True).map(str),
    st.integers(-(10**12), 10**12).map(str),
    st.datetimes().map(lambda moment: moment.strftime("%a, %d %b %Y %H:%M:%S GMT")),
)

# Which class each status must become.
STATUS_CLASSES: dict[int, type[APIStatusError]] = {
    400: BadRequestError,
    401: AuthenticationError,
    403: PermissionDeniedError,
    404: NotFoundError,
    429: RateLimitError,
}


def expected_class(status: int) -> type[APIStatusError]:
    """The documented error class of an HTTP error status."""
    return STATUS_CLASSES.get(status, InternalServerError if status >= 500 else APIStatusError)


def outcome_unknown(call: Call, status: int) -> bool:
    """Whether the retry policy says this failure leaves the outcome of ``call`` open."""
    return call.method == "POST" and status >= 500 and status != 503


# -- the properties ----------------------------------------------------------------------------


def _serve_2xx_and_call(harness: Harness, call: Call, status: int, raw: bytes) -> None:
    harness.serve_once(call.route, Fault.status(status, body=raw))
    result: object = None
    failure: InvalidResponseError | None = None
    try:
        result = harness.run(call.invoke(harness.client))
    except InvalidResponseError as error:  # the one error a 2xx may give
        failure = error
    if failure is not None and call.route != "GET /api_keys":
        # A send or a regenerate answered 2xx reached Notify: without a usable answer its
        # outcome is unknown (for a regenerate, the old key is most likely dead already).
        assert isinstance(failure, OutcomeUnknownError), failure
        if call.route == "POST /api_keys/regenerate":
            assert "dashboard" in failure.message
    if failure is None:
        call.check(result)
        event("a typed result")
    else:
        assert failure.message  # says what was wrong
        event("InvalidResponseError")
    # The fault was used: this example really exercised the body it generated.
    assert harness.server.pending_faults(call.route) == 0


@pytest.mark.parametrize("call", CALLS, ids=repr)
@PROPERTY
@given(status=ok_statuses, data=st.data())
def test_any_json_2xx_body_gives_a_typed_result_or_invalid_response(
    harness: Harness, call: Call, status: int, data: st.DataObject
) -> None:
    body = data.draw(call.json_bodies, label="body")
    _serve_2xx_and_call(harness, call, status, json.dumps(body).encode())


@pytest.mark.parametrize("call", CALLS, ids=repr)
@PROPERTY
@given(status=ok_statuses, raw=any_byte_bodies)
# JSON nested deeper than the interpreter's recursion limit.
@example(status=200, raw=b"[" * 2_000).via("deep nesting")
@example(status=200, raw=b'{"a":' * 2_000).via("deep nesting")
@example(status=200, raw=b"").via("empty body")
@example(status=200, raw=b"9" * 5_000).via("an integer over Python's digit limit")
def test_any_2xx_bytes_give_a_typed_result_or_invalid_response(
    harness: Harness, call: Call, status: int, raw: bytes
) -> None:
    _serve_2xx_and_call(harness, call, status, raw)


@pytest.mark.parametrize("call", CALLS, ids=repr)
@PROPERTY
@given(
    status=error_statuses,
    body=byte_bodies(error_bodies),
    retry_after=retry_after_values,
)
@example(status=500, body=b"[" * 2_000, retry_after=None).via("deep nesting")
@example(status=429, body=b"", retry_after="inf").via("an endless Retry-After")
def test_any_error_answer_is_the_status_error_of_its_code(
    harness: Harness, call: Call, status: int, body: bytes, retry_after: str | None
) -> None:
    headers = {} if retry_after is None else {"Retry-After": retry_after}
    harness.serve_once(call.route, Fault.status(status, body=body, headers=headers))

    with pytest.raises((APIStatusError, OutcomeUnknownError)) as caught:
        harness.run(call.invoke(harness.client))

    error: BaseException = caught.value
    event(type(error).__name__)
    if outcome_unknown(call, status):
        # Both the marker and the status's own class, so that either `except` catches it.
        assert isinstance(error, OutcomeUnknownError)
        assert isinstance(error, expected_class(status))
        assert error.status_code == status
        assert error.__cause__ is not None
        error = error.__cause__
    assert type(error) is expected_class(status)
    assert isinstance(error, APIStatusError)
    assert error.status_code == status
    assert type(error.server_message) is str
    assert error.attempts == 1  # max_retries=0, and a 401 with an unchanged key is not replayed
    retry = error.retry_after
    assert retry is None or retry >= 0
    # Whatever the server said, the error can be shown and logged.
    assert str(caught.value)
    assert traceback.format_exception(caught.value)
    assert harness.server.pending_faults(call.route) == 0
