"""Response models, and the functions that build them from JSON.

Models are small frozen attrs classes. Building them is strict on purpose: a lenient
converter would happily turn ``123`` into ``"123"`` or ``"false"`` into ``True``, and a
client that does that hides a broken response from its user. Wrong types raise, and
``Parser`` turns every structuring failure into an ``InvalidResponseError`` that names the
field path.

Two ways build a model, from functions generated once from its attrs fields, and they
accept the same answers into equal models (the tests hold them to it; ``Reader`` says
where the fast way is more lenient, in fields no model reads):

* ``Reader.fast``, which every answer of the library's own endpoints takes first: msgspec
  decodes the bytes straight into typed structs, and the generated function copies them
  into the frozen model with plain slot stores;
* the long way, for what that declines: the decoded JSON body, whose generated function
  reads each field under its wire name, checks the exact JSON type, and builds the model
  the same way (``Parser``). Bad data makes it raise ``KeyError``, ``TypeError`` or
  ``ValueError``; only then does a cattrs converter (with per-field error bookkeeping,
  imported on first use) run on the same body, to say which field is wrong.
"""

from __future__ import annotations

__all__ = ["ApiKey", "Parser", "Reader", "RegeneratedApiKey", "SendEmailResult"]

import functools
import gc
import sys
import warnings
from collections.abc import Callable
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, Generic, TypeVar, get_args, get_origin

import attrs
import orjson

from ._exceptions import InvalidResponseError, NotifyError

if TYPE_CHECKING:
    import cattrs

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


# The wire name of each field whose Python name differs: the API speaks camelCase.
_WIRE_NAMES: dict[type, dict[str, str]] = {
    ApiKey: {"created_at": "createdAt", "updated_at": "updatedAt"},
}

if sys.version_info >= (3, 11):
    _fromisoformat = datetime.fromisoformat
else:  # fromisoformat only learned the "Z" suffix (and more of ISO 8601) in Python 3.11.

    def _fromisoformat(value: str) -> datetime:
        if type(value) is not str:  # endswith would raise AttributeError, not TypeError
            raise TypeError("expected an ISO-8601 string")
        return datetime.fromisoformat(value[:-1] + "+00:00" if value.endswith("Z") else value)


def _aware(moment: datetime) -> datetime:
    # A naive time from an API that documents UTC is UTC; keep it aware for callers.
    return moment.replace(tzinfo=timezone.utc) if moment.tzinfo is None else moment


# -- the structuring functions -----------------------------------------------------------
#
# What bad data makes a generated function raise, and catch: KeyError (a field is missing),
# TypeError (a wrong type, or an item that is not an object) and ValueError (not a
# timestamp). Nothing else is caught, so that a bug in this module surfaces as itself.
_BAD_DATA = (KeyError, TypeError, ValueError)


class _Refused(TypeError):
    """A field has the wrong JSON type (the detailed converter says which)."""


def _generate(
    model: type[Any], *, many: bool, explain: Callable[[Any], Any], from_struct: bool = False
) -> Callable[[Any], Any]:
    """Write and compile the straight-line structuring function of an attrs ``model``.

    It reads each field from a JSON object (a dict, under the field's wire name, its exact
    JSON type checked) or, with ``from_struct``, from the msgspec struct that ``Reader``
    decoded (an attribute of the field's own name, its type already checked by msgspec).

    The instance is built as a subclass that allows slot stores (the frozen class forbids
    them), then given its real class: six stores and one class switch cost a fraction of
    the attrs ``__init__`` and its ``object.__setattr__`` calls. Each value is also kept in
    a local, so that the type checks read locals rather than slots. ``many`` makes a
    function that structures a list of objects in one loop, with the collector paused
    for a long one (see ``_PAUSE_COLLECTOR_FROM``).

    The function is the whole fast path, called directly: a ``Parser.__call__`` around it
    cost 2,000 instructions per call (callgrind), more than building three keys' strings.
    Bad data goes to ``explain`` (outside the ``except`` block, so that nothing chains).
    """
    building = type(
        f"_Building{model.__name__}",
        (model,),
        {
            "__slots__": (),
            # Both, or CPython keeps the slow slot for attribute stores.
            "__setattr__": object.__setattr__,
            "__delattr__": object.__delattr__,
            # Calling the class then runs no Python code: object's own __new__ and __init__.
            "__init__": object.__init__,
        },
    )
    wire = _WIRE_NAMES.get(model, {})
    attrs.resolve_types(model)  # the annotations are strings (from __future__ import annotations)
    fields = attrs.fields(model)
    stores: list[str] = []
    checks: list[str] = []
    fixes: list[str] = []
    for number, field in enumerate(fields):
        name, key, value = field.name, wire.get(field.name, field.name), f"_{number}"
        if from_struct:
            read = f"v.{name}"
        elif field.default is attrs.NOTHING:
            read = f"v[{key!r}]"
        else:
            read = f"v.get({key!r}, _default_{name})"
        if field.type is datetime:
            stores.append(f"o.{name} = {value} = _fromisoformat({read})")
            fixes.append(f"if {value}.tzinfo is None:")
            fixes.append(f"    o.{name} = {value}.replace(tzinfo=_utc)")
        else:
            stores.append(f"o.{name} = {value} = {read}")
            if not from_struct:
                checks.append(f"type({value}) is not {_JSON_TYPES[field.type]}")
    # A required field's read raises TypeError for anything but a dict (orjson gives dicts,
    # lists, strings, numbers, booleans and None); a first read with .get() would raise
    # AttributeError instead, so it needs the check. A struct is always of its own type.
    check_dict = not from_struct and _first_read_is_get(fields)
    body = [
        *(["if type(v) is not dict:", "    raise _Refused"] if check_dict else []),
        "o = _building()",
        *stores,
        f"if {' or '.join(checks)}:" if checks else "if False:",
        "    raise _Refused",
        *fixes,
        "o.__class__ = _model",
    ]
    if many:
        lines = [
            "def structure(items):",
            # A loop would take any iterable for a list: {} as [], a string as its letters.
            "    if type(items) is not list:",
            "        return _explain(items)",
            f"    paused = len(items) >= {_PAUSE_COLLECTOR_FROM} and _gc_isenabled()",
            "    if paused:",
            "        _gc_disable()",
            "    try:",
            "        out = []",
            "        for v in items:",
            *(f"            {line}" for line in body),
            # out.append(o), not a cached bound append: Python 3.11 specializes this form
            # (about 200 instructions per item fewer).
            "            out.append(o)",
            "        return out",
            "    except _BAD_DATA:",
            "        pass",
            "    finally:",
            "        if paused:",
            "            _gc_enable()",
            "    return _explain(items)",
        ]
    else:
        lines = [
            "def structure(v):",
            "    try:",
            *(f"        {line}" for line in body),
            "        return o",
            "    except _BAD_DATA:",
            "        pass",
            "    return _explain(v)",
        ]
    namespace: dict[str, Any] = {
        "_building": building,
        "_model": model,
        "_utc": timezone.utc,
        "_fromisoformat": _fromisoformat,
        "_Refused": _Refused,
        "_BAD_DATA": _BAD_DATA,
        "_explain": explain,
        "_gc_isenabled": gc.isenabled,
        "_gc_disable": gc.disable,
        "_gc_enable": gc.enable,
        **{
            f"_default_{field.name}": field.default
            for field in fields
            if field.default is not attrs.NOTHING
        },
    }
    # The source is built from the model's own field names above, never from input.
    exec(compile("\n".join(lines), f"<structure {model.__name__}>", "exec"), namespace)  # noqa: S102  # nosec B102
    function: Callable[[Any], Any] = namespace["structure"]
    return function


def _first_read_is_get(fields: tuple[attrs.Attribute[Any], ...]) -> bool:
    return not fields or fields[0].default is not attrs.NOTHING


# The exact JSON type a field's value must have; bool is an int subclass, and neither may
# stand in for the other.
_JSON_TYPES = {str: "str", bool: "bool", int: "int", float: "float"}


def decode_json(raw: bytes) -> Any:
    """Decode a body as JSON, or raise ``InvalidResponseError`` describing what came instead."""
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
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


# CPython runs a young-generation collection every 700 allocations of container objects,
# and each model instance is one (a slotted class), alive until the list is returned. A
# collection that runs while a long list is being built walks the instances made so far
# and promotes them; promoted often enough, they set off full collections, which walk the
# whole heap. json.loads' dicts of strings are untracked at their first collection and
# never cost this. Measured on 1,000-key answers: 184 µs of collection per answer against
# raw aiohttp's 27 µs, and 33 µs (raw: 29 µs) with the collector paused while the list is
# built (well under a millisecond). Mercurial pauses it the same way while it builds large
# structures. The collector is process-wide: a gc.disable() that another thread makes
# inside that window is undone by the gc.enable() here.
_PAUSE_COLLECTOR_FROM = 64


class Parser(Generic[T]):
    """How to structure one part of a response into ``model``, planned once, at import.

    ``model`` is an attrs model or ``list[`` one ``]``. ``path`` only names the part in
    messages, e.g. ``"data"``, so that an error reads
    ``data[0].createdAt: expected an ISO-8601 timestamp``. Call ``parse`` (or the parser
    itself, which costs a little more per call).
    """

    __slots__ = ("is_list", "model", "parse", "path")

    def __init__(self, model: type[T], *, path: str) -> None:
        self.model = model
        self.path = path
        self.is_list = get_origin(model) is list
        """Whether ``model`` is a ``list[`` of a model ``]``."""
        item = get_args(model)[0] if self.is_list else model
        self.parse: Callable[[Any], T] = _generate(item, many=self.is_list, explain=self._explain)
        """Structure a body, or raise ``InvalidResponseError`` naming the field path."""

    def __call__(self, body: Any) -> T:
        """Structure ``body``, or raise ``InvalidResponseError`` naming the field path."""
        return self.parse(body)

    def _explain(self, body: Any) -> T:
        if self.is_list and type(body) is not list:
            raise InvalidResponseError(
                "unexpected response shape: expected a JSON array, "
                f"got {type(body).__name__} @ {self.path}"
            )
        try:
            result: T = _detailed_converter().structure(body, self.model)
        except Exception as exc:  # cattrs raises ClassValidationError, KeyError, TypeError...
            problem = _describe_structure_error(exc, self.path)
        else:
            # Both sides apply the same rules, and the tests hold them to it: getting here
            # is a bug in this module. The detailed result is correct, so the call goes on.
            warnings.warn(
                f"notify_async: the fast structuring of {self.model} refused a body that the "
                "detailed converter accepts; please report this bug",
                RuntimeWarning,
                stacklevel=3,
            )
            return result
        # Raised outside the except block: cattrs' errors, left as __context__, hold the values.
        raise InvalidResponseError(f"unexpected response shape: {problem}")


class Reader(Generic[T]):
    """How an endpoint's model is read from the bytes of a 2xx answer.

    ``field`` names the part of the answer that holds the model (``"data"``), or is
    ``None`` when the model is the whole answer. The pipeline calls ``fast`` first:

    * msgspec decodes the bytes straight into typed structs: exact JSON types, every
      required field present, unknown fields ignored, ``success`` (absent means true)
      read from the same object;
    * a generated function (``_generate(..., from_struct=True)``) builds the frozen attrs
      models from them, each timestamp parsed by ``datetime.fromisoformat`` and read as
      UTC when naive, exactly as ``Parser`` does.

    This costs less than ``json.loads`` alone on the same bytes: the dicts that a JSON
    decoder would build, only to be read once and dropped, are never made. ``fast``
    returns ``None`` for anything it does not accept (a wrong type, a missing field,
    ``success`` not true, a bad timestamp, bytes that are not UTF-8 JSON): the pipeline
    then takes the long way, the envelope check and ``parse`` (a ``Parser``), which raise
    the ``InvalidResponseError`` that says what is wrong, with its JSON path. The two
    ways accept the same answers into equal models, but for orjson's own limits in the
    fields no model reads: a number no float holds (``1e400``), and nesting deeper than
    1,024 levels where the interpreter lets msgspec go deeper (from Python 3.12 on, or
    with a raised recursion limit). The fast way skips those fields, as Notify's unknown
    fields are to be accepted whatever they hold; the long way refuses the answer.

    The fields may be ``str``, ``bool`` and ``datetime``, checked here: msgspec would turn
    a JSON integer into a float where ``Parser`` refuses it. The decoder is planned by
    ``prepare``, which the pipeline calls before the first request of a call is sent, so
    that msgspec (imported then, not with the package) failing to load fails the call
    before it can take effect.

    Deep answers: msgspec nests on the C stack. On Python 3.10 and 3.11 its depth is
    bounded by the recursion limit, so ``fast`` declines every answer while the limit is
    above 4,000 (an app that raised it far could be crashed by a deep answer); from 3.12
    on, the interpreter's own C recursion limit bounds it. In a thread with a small stack
    (128 KiB or less) a deep enough answer can crash either way, as it can orjson.
    """

    __slots__ = ("_planned", "field", "model", "parser", "prepared")

    def __init__(self, model: type[T], *, field: str | None) -> None:
        self.model = model
        self.field = field
        self.parser: Parser[T] = Parser(model, path=field or "$")
        _check_readable(get_args(model)[0] if self.parser.is_list else model)
        # (msgspec's decoder of the answer, the function that builds the models), planned
        # by prepare().
        self._planned: tuple[Any, Callable[[Any], T | None]] | None = None
        self.prepared = False
        """Whether the decoder is planned (an attribute: the pipeline reads it per call)."""

    def prepare(self) -> None:
        """Plan the decoder now: import msgspec and build the structs of the answer.

        Raises ``NotifyError`` if msgspec cannot be loaded (a broken install).
        """
        if self._planned is None:
            self._planned = self._planned_or_raise()

    def _planned_or_raise(self) -> tuple[Any, Callable[[Any], T | None]]:
        try:
            planned = self._plan()
        except Exception as exc:  # an install without msgspec, or one too old
            problem = f"{type(exc).__name__}: {exc}"
        else:
            self.prepared = True
            return planned
        raise NotifyError(
            f"notify-async could not load msgspec, which it reads answers with ({problem}); "
            "reinstall it with its dependencies (pip install --force-reinstall notify-async)"
        )

    def fast(self, raw: bytes) -> T | None:
        """The model read straight from ``raw``, or ``None`` to read it the long way."""
        planned = self._planned
        if planned is None:
            planned = self._planned = self._planned_or_raise()
        # On Python 3.10 and 3.11 msgspec nests as deep as the recursion limit allows, on
        # the C stack: an app that raised the limit far could be crashed by a deep enough
        # answer (see the class docstring). orjson, on the long way, stops at 1,024 levels.
        if _recursion_limit() > _DEEPEST_SAFE_LIMIT:
            return None
        # msgspec checks the UTF-8 of the strings it reads, not of the fields it skips.
        if not raw.isascii() and not _is_utf8(raw):
            return None
        decoder, build = planned
        try:
            answer = decoder.decode(raw)
        except _decode_error():
            return None
        if answer.success is not True:
            return None
        return build(answer if self.field is None else getattr(answer, self.field))

    def parse(self, body: dict[str, Any]) -> T:
        """Structure the decoded answer ``body`` (its envelope checked), or raise."""
        return self.parser.parse(body if self.field is None else body.get(self.field))

    def _plan(self) -> tuple[Any, Callable[[Any], T | None]]:
        import msgspec  # noqa: PLC0415

        is_list = self.parser.is_list
        item = get_args(self.model)[0] if is_list else self.model
        struct = _wire_struct(item, with_success=self.field is None)
        if self.field is None:
            answer = struct
        else:
            part: Any = list[struct] if is_list else struct  # type: ignore[valid-type]
            answer = msgspec.defstruct(
                f"_{item.__name__}Answer",
                [(self.field, part), ("success", bool, True)],
                kw_only=True,
                gc=False,
            )
        build = _generate(item, many=is_list, explain=_none, from_struct=True)
        return msgspec.json.Decoder(answer), build


def _none(_: Any) -> None:
    return None


@functools.cache
def _decode_error() -> tuple[type[Exception], ...]:
    import msgspec  # noqa: PLC0415

    # ValidationError (a wrong type, a missing field) is a DecodeError (not JSON) too; JSON
    # nested deeper than the interpreter allows raises RecursionError.
    return (msgspec.DecodeError, RecursionError)


_recursion_limit = sys.getrecursionlimit

# Python's default limit is 1,000; Hypothesis adds 2,000 while a test runs. On Python 3.11,
# nested 4,900 levels deep, msgspec decoded safely in a thread with a 256 KiB stack, where
# about 10,000 levels crashed it.
_DEEPEST_SAFE_LIMIT = 4_000


def _is_utf8(raw: bytes) -> bool:
    try:
        raw.decode()
    except UnicodeDecodeError:
        return False
    return True


_READABLE = (str, bool, datetime)


def _check_readable(model: type[Any]) -> None:
    attrs.resolve_types(model)
    for field in attrs.fields(model):
        if field.type not in _READABLE:
            raise TypeError(
                f"Reader reads str, bool and datetime fields; {model.__name__}.{field.name} "
                f"is {field.type!r}. msgspec would read a JSON integer into a float field, "
                "which Parser refuses: give _wire_struct an exact type for it first"
            )


def _wire_struct(model: type[Any], *, with_success: bool) -> Any:
    """A msgspec struct with ``model``'s fields under their wire names.

    Timestamps stay strings here, for ``datetime.fromisoformat`` to parse as the long way
    does: msgspec reads some timestamps differently (it rounds digits past the microsecond,
    where fromisoformat cuts them, and accepts a lowercase ``t`` and ``z``). No struct can
    hold a reference cycle (strings and booleans only), so they are not tracked by the
    collector.
    """
    import msgspec  # noqa: PLC0415

    attrs.resolve_types(model)
    fields: list[Any] = []
    for field in attrs.fields(model):
        kind = str if field.type is datetime else field.type
        fields.append(
            (field.name, kind)
            if field.default is attrs.NOTHING
            else (field.name, kind, field.default)
        )
    if with_success and "success" not in attrs.fields_dict(model):
        fields.append(("success", bool, True))
    return msgspec.defstruct(
        f"_{model.__name__}Wire",
        fields,
        rename=_WIRE_NAMES.get(model, {}) or None,
        kw_only=True,
        gc=False,
    )


# -- the detailed converter: only when a body is refused --------------------------------


def _exact(kind: type[T]) -> Callable[[Any, type[T]], T]:
    # A strict scalar hook: accept exactly the JSON type, reject everything else.
    def structure(value: Any, _: type[T]) -> T:
        # bool is an int subclass; neither may stand in for the other here.
        if type(value) is not kind:
            raise TypeError(f"expected {kind.__name__}, got {type(value).__name__}")
        return value

    return structure


def _structure_datetime(value: Any, _: type[datetime]) -> datetime:
    if type(value) is not str:
        raise TypeError(f"expected an ISO-8601 string, got {type(value).__name__}")
    try:
        parsed = _fromisoformat(value)
    except ValueError:
        # Python's message quotes the value, which can be anything the server put there.
        raise ValueError("expected an ISO-8601 timestamp") from None
    return _aware(parsed)


def _object_only(hook: Callable[[Any, Any], T]) -> Callable[[Any, type[T]], T]:
    # cattrs would index whatever came (a string, a number) and report Python's own error
    # about that ("string indices must be integers") instead of what the server got wrong.
    def structure(value: Any, kind: type[T]) -> T:
        if type(value) is not dict:
            raise TypeError(f"expected a JSON object, got {type(value).__name__}")
        return hook(value, kind)

    return structure


@functools.cache
def _detailed_converter() -> cattrs.Converter:
    """The cattrs converter that explains a refused body field by field, built on first use.

    Importing cattrs only here keeps it out of ``import notify_async``.
    """
    import cattrs  # noqa: PLC0415
    from cattrs.gen import make_dict_structure_fn, override  # noqa: PLC0415

    converter = cattrs.Converter(forbid_extra_keys=False, detailed_validation=True)
    for kind in (str, bool, int, float):
        converter.register_structure_hook(kind, _exact(kind))
    converter.register_structure_hook(datetime, _structure_datetime)
    for model in (ApiKey, RegeneratedApiKey, SendEmailResult):
        renames = {name: override(rename=wire) for name, wire in _WIRE_NAMES.get(model, {}).items()}
        hook = make_dict_structure_fn(model, converter, **renames)  # type: ignore[arg-type]
        converter.register_structure_hook(model, _object_only(hook))
    return converter


def _describe_structure_error(exc: Exception, path: str) -> str:
    import cattrs  # noqa: PLC0415

    messages = cattrs.transform_error(exc, path=path, format_exception=_format_exception)
    # Keys are camelCase on the wire; show those, since that is what the server sent.
    return "; ".join(_to_wire_names(m) for m in messages[:3])


def _format_exception(exc: BaseException, _: type | None) -> str:
    if isinstance(exc, KeyError):
        return "required field missing"
    if isinstance(exc, (TypeError, ValueError)) and exc.args:
        return str(exc.args[0])
    return f"invalid value ({type(exc).__name__})"


def _to_wire_names(message: str) -> str:
    for wire in _WIRE_NAMES.values():
        for python_name, wire_name in wire.items():
            message = message.replace(f".{python_name}", f".{wire_name}")
    return message
