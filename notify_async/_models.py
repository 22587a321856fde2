"""Response models and the cattrs converter that builds them from JSON.

Models are small frozen attrs classes. The converter is strict on purpose: cattrs would
happily turn ``123`` into ``"123"`` or ``"false"`` into ``True``, and a client that does
that hides a broken response from its user. Wrong types raise, and ``parse`` turns every
structuring failure into an ``InvalidResponseError`` that names the field path.
"""

from __future__ import annotations

__all__ = ["ApiKey", "Parser", "RegeneratedApiKey", "SendEmailResult"]

import json
import sys
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any, Generic, TypeVar, get_origin

import attrs
import cattrs
from cattrs.gen import make_dict_structure_fn, override

from ._exceptions import InvalidResponseError

T = TypeVar("T")


@attrs.frozen
class ApiKey:
    """One API key of the account, as ``GET /api_keys`` lists it.

    Only a ``prefix`` of the key comes back (``"a1b2c3d4..."``), never the key itself.
    The datetimes are timezone-aware (UTC).
    """

    id: str
    name: str
    created_at: datetime
    updated_at: datetime
    active: bool
    prefix: str


@attrs.frozen
class RegeneratedApiKey:
    """The result of ``POST /api_keys/regenerate``.

    ``api_key`` is the new secret; it is left out of ``repr`` so that it never lands in a
    log by accident. The old key stopped working the moment this was created.
    """

    id: str
    message: str
    api_key: str = attrs.field(repr=False)


@attrs.frozen
class SendEmailResult:
    """The result of a send: ``success`` and the server's ``message``."""

    success: bool
    message: str = ""


# A strict scalar hook: accept exactly the JSON type, reject everything else.
def _exact(kind: type[T]) -> Callable[[Any, type[T]], T]:
    def structure(value: Any, _: type[T]) -> T:
        # bool is an int subclass; neither may stand in for the other here.
        if type(value) is not kind:
            raise TypeError(f"expected {kind.__name__}, got {type(value).__name__}")
        return value

    return structure


if sys.version_info >= (3, 11):
    _fromisoformat = datetime.fromisoformat
else:  # fromisoformat only learned the "Z" suffix (and more of ISO 8601) in Python 3.11.

    def _fromisoformat(value: str) -> datetime:
        return datetime.fromisoformat(value[:-1] + "+00:00" if value.endswith("Z") else value)


def _structure_datetime(value: Any, _: type[datetime]) -> datetime:
    if type(value) is not str:
        raise TypeError(f"expected an ISO-8601 string, got {type(value).__name__}")
    try:
        parsed = _fromisoformat(value)
    except ValueError:
        # Python's message quotes the value, which can be anything the server put there.
        raise ValueError("expected an ISO-8601 timestamp") from None
    if parsed.tzinfo is None:
        # A naive time from an API that documents UTC is UTC; keep it aware for callers.
        parsed = parsed.replace(tzinfo=timezone.utc)
    return parsed


def _object_only(hook: Callable[[Any, Any], T]) -> Callable[[Any, type[T]], T]:
    # cattrs would index whatever came (a string, a number) and report Python's own error
    # about that ("string indices must be integers") instead of what the server got wrong.
    def structure(value: Any, kind: type[T]) -> T:
        if type(value) is not dict:
            raise TypeError(f"expected a JSON object, got {type(value).__name__}")
        return hook(value, kind)

    return structure


def _structure_api_key_fast(value: Any, _: type[ApiKey]) -> ApiKey:
    # Listing is the hot path: one ApiKey per key on every call. The same strict rules as
    # the generated hook, checked inline instead of one hook call per field. Anything
    # unusual raises, and the detailed converter then says what is wrong; the tests check
    # that both converters agree on any input.
    id_, name, prefix, active = value["id"], value["name"], value["prefix"], value["active"]
    if type(id_) is not str or type(name) is not str or type(prefix) is not str:
        raise TypeError("an API key field is not a string")
    if type(active) is not bool:
        raise TypeError("active is not a boolean")
    created_at, updated_at = value["createdAt"], value["updatedAt"]
    if type(created_at) is not str or type(updated_at) is not str:
        raise TypeError("a timestamp is not a string")
    created_at, updated_at = _fromisoformat(created_at), _fromisoformat(updated_at)
    if created_at.tzinfo is None or updated_at.tzinfo is None:
        raise ValueError("a naive timestamp")  # the detailed converter reads these as UTC
    return ApiKey(id_, name, created_at, updated_at, active, prefix)


def _make_converter(*, detailed: bool) -> cattrs.Converter:
    converter = cattrs.Converter(forbid_extra_keys=False, detailed_validation=detailed)
    for kind in (str, bool, int, float):
        converter.register_structure_hook(kind, _exact(kind))
    converter.register_structure_hook(datetime, _structure_datetime)
    if not detailed:
        converter.register_structure_hook(ApiKey, _structure_api_key_fast)
        return converter
    structure_api_key = make_dict_structure_fn(
        ApiKey,
        converter,
        created_at=override(rename="createdAt"),
        updated_at=override(rename="updatedAt"),
    )
    converter.register_structure_hook(ApiKey, _object_only(structure_api_key))
    return converter


# Two converters with the same strict rules. The fast one structures a good response with
# straight-line code; only when it fails does the detailed one (cattrs-generated, with
# renames and per-field errors) run again on the same body, to say which field is wrong.
# A good response never pays for the error bookkeeping.
_fast_converter = _make_converter(detailed=False)
_detailed_converter = _make_converter(detailed=True)


_decoder = json.JSONDecoder()
_JSON_WHITESPACE = " \t\n\r"


def decode_json(raw: bytes) -> Any:
    """Decode a body as JSON, or raise ``InvalidResponseError`` describing what came instead."""
    try:
        # json.loads(bytes) first guesses the encoding in Python code; the API speaks UTF-8,
        # and decoding it here makes this step a third cheaper on every response.
        text = raw.decode("utf-8").strip(_JSON_WHITESPACE)
        body, end = _decoder.raw_decode(text)
        if end == len(text):
            return body
    except (ValueError, RecursionError):  # RecursionError: nested deeper than Python can follow
        pass
    # Raised outside the except block: the JSONDecodeError, left as __context__, would carry
    # the whole body (a key the server echoed included) in its `doc`.
    raise InvalidResponseError(
        f"expected a JSON body, got {describe_body(raw)}; "
        "check base_url, and any proxy between you and Notify"
    )


def describe_body(raw: bytes) -> str:
    """Say briefly what a non-JSON body is, without quoting more than a short snippet."""
    text = raw.decode("utf-8", "replace").strip()
    if not text:
        return "an empty body"
    if text[:15].lower().startswith(("<!doctype", "<html")):
        return "an HTML page (likely from a proxy or load balancer)"
    snippet = " ".join(text.split())[:80]
    return f"{snippet!r}"


class Parser(Generic[T]):
    """How to structure one part of a response into ``model``, planned once, at import.

    ``path`` only names the part in messages, e.g. ``"data"``, so that an error reads
    ``data[0].createdAt: expected an ISO-8601 timestamp``. Looking the hook up once keeps
    type dispatch off the per-response path.
    """

    __slots__ = ("_fast", "_is_list", "model", "path")

    def __init__(self, model: type[T], *, path: str) -> None:
        self.model = model
        self.path = path
        self._is_list = get_origin(model) is list
        self._fast: Callable[[Any, Any], T] = _fast_converter.get_structure_hook(model)

    def __call__(self, body: Any) -> T:
        """Structure ``body``, or raise ``InvalidResponseError`` naming the field path."""
        # cattrs would take any iterable for a list: {} as [], a string as its characters.
        if self._is_list and type(body) is not list:
            raise InvalidResponseError(
                "unexpected response shape: expected a JSON array, "
                f"got {type(body).__name__} @ {self.path}"
            )
        try:
            return self._fast(body, self.model)
        # Not chained, not logged: the detailed converter below explains the failure, and
        # this error may quote a value from the body.
        except Exception:  # noqa: S110  # nosec B110
            pass
        try:
            result: T = _detailed_converter.structure(body, self.model)
        except Exception as exc:  # cattrs raises ClassValidationError, KeyError, TypeError...
            problem = _describe_structure_error(exc, self.path)
        else:
            return result
        # Raised outside the except block: cattrs' errors, left as __context__, hold the values.
        raise InvalidResponseError(f"unexpected response shape: {problem}")


def _describe_structure_error(exc: Exception, path: str) -> str:
    messages = cattrs.transform_error(exc, path=path, format_exception=_format_exception)
    # Keys are camelCase on the wire; show those, since that is what the server sent.
    return "; ".join(_to_wire_names(m) for m in messages[:3])


def _format_exception(exc: BaseException, _: type | None) -> str:
    if isinstance(exc, KeyError):
        return "required field missing"
    if isinstance(exc, (TypeError, ValueError)) and exc.args:
        return str(exc.args[0])
    return f"invalid value ({type(exc).__name__})"


_WIRE_NAMES = {".created_at": ".createdAt", ".updated_at": ".updatedAt"}


def _to_wire_names(message: str) -> str:
    for python_name, wire_name in _WIRE_NAMES.items():
        message = message.replace(python_name, wire_name)
    return message
