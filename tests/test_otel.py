"""OpenTelemetry's aiohttp client instrumentation traces every attempt, and never the key.

The instrumentation and the SDK are test dependencies only: notify-async sends through
aiohttp, so a user who instruments aiohttp sees its requests without any code of ours.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.instrumentation.aiohttp_client import AioHttpClientInstrumentor
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from yarl import URL

from notify_async import FileKeyProvider, NotifyClient, OutcomeUnknownError
from notify_async.testing import Fault, LocalNotifyServer, instant_retries

CAPTURE = "OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_CLIENT_REQUEST"
SANITIZE = "OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SANITIZE_FIELDS"


@pytest.fixture
def spans(monkeypatch: pytest.MonkeyPatch) -> Iterator[InMemorySpanExporter]:
    """aiohttp instrumented into an in-memory exporter, for sessions created from now on."""
    for name in (CAPTURE, SANITIZE, "OTEL_SEMCONV_STABILITY_OPT_IN"):
        monkeypatch.delenv(name, raising=False)
    exporter = InMemorySpanExporter()
    yield exporter
    AioHttpClientInstrumentor().uninstrument()


def instrument(exporter: InMemorySpanExporter) -> None:
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    AioHttpClientInstrumentor().instrument(tracer_provider=provider)


def described(span: ReadableSpan) -> tuple[str, str, int | None]:
    """Method, URL path and status of a client span, under either HTTP semantic convention."""
    attributes: Mapping[str, Any] = span.attributes or {}
    method = attributes.get("http.request.method", attributes.get("http.method"))
    url = attributes.get("url.full", attributes.get("http.url"))
    status = attributes.get("http.response.status_code", attributes.get("http.status_code"))
    return str(method), URL(str(url)).path, status


def everything_recorded(span: ReadableSpan) -> str:
    """Every attribute and event of a span, as text, to search for a key."""
    parts = [span.name, repr(dict(span.attributes or {}))]
    parts += [f"{event.name} {dict(event.attributes or {})!r}" for event in span.events]
    parts.append(repr(span.status.description))
    return "\n".join(parts)


@pytest.mark.parametrize("convention", ["default", "http"])
async def test_every_attempt_is_a_span_with_method_path_and_status(
    spans: InMemorySpanExporter,
    notify_server: LocalNotifyServer,
    monkeypatch: pytest.MonkeyPatch,
    convention: str,
) -> None:
    if convention == "http":  # the stable HTTP semantic conventions
        monkeypatch.setenv("OTEL_SEMCONV_STABILITY_OPT_IN", "http")
    instrument(spans)
    notify_server.inject("POST /send-email", Fault.status(503, headers={"Retry-After": "0"}))
    notify_server.inject("GET /api_keys", Fault.status(502), Fault.status(500))

    async with NotifyClient(notify_server.api_key, base_url=notify_server.base_url) as client:
        with instant_retries():
            await client.emails.send(to="ada@example.com", subject="Hi", message="Hello")
            await client.api_keys.list()

    assert [described(span) for span in spans.get_finished_spans()] == [
        ("POST", "/api/public/v1/send-email", 503),
        ("POST", "/api/public/v1/send-email", 200),
        ("GET", "/api/public/v1/api_keys", 502),
        ("GET", "/api/public/v1/api_keys", 500),
        ("GET", "/api/public/v1/api_keys", 200),
    ]


async def test_a_replay_after_a_rotation_is_a_span_too(
    spans: InMemorySpanExporter, notify_server: LocalNotifyServer, tmp_path: Path
) -> None:
    instrument(spans)
    key_file = tmp_path / "notify.key"
    key_file.write_text(notify_server.api_key)

    async with NotifyClient(
        credentials=FileKeyProvider(key_file), base_url=notify_server.base_url, rotation_grace=0
    ) as client:
        await client.api_keys.list()
        key_file.write_text(notify_server.rotate())
        await client.api_keys.list()

    assert [described(span)[2] for span in spans.get_finished_spans()] == [200, 401, 200]


@pytest.mark.parametrize(
    "capture",
    [None, "x-api-key", ".*"],
    ids=["headers-not-captured", "key-header-named", "all-headers"],
)
async def test_no_span_holds_the_key_when_the_key_header_is_sanitized(
    spans: InMemorySpanExporter,
    notify_server: LocalNotifyServer,
    monkeypatch: pytest.MonkeyPatch,
    capture: str | None,
) -> None:
    if capture is not None:
        # Capturing headers is opt-in; whoever opts in sanitizes the key's header, as the
        # recipe does.
        monkeypatch.setenv(CAPTURE, capture)
        monkeypatch.setenv(SANITIZE, "x-api-key")
    instrument(spans)
    old_key = notify_server.api_key
    # A success, a retried failure, a lost reply and a rejected key: every kind of span.
    notify_server.inject("GET /api_keys", Fault.status(503), Fault.drop_before())
    notify_server.inject("POST /send-email", Fault.drop_after())

    async with NotifyClient(old_key, base_url=notify_server.base_url, rotation_grace=0) as client:
        with instant_retries():
            await client.api_keys.list()
            with pytest.raises(OutcomeUnknownError):
                await client.emails.send(to="ada@example.com", subject="Hi", message="Hello")
            new_key = await client.api_keys.rotate()

    finished = spans.get_finished_spans()
    assert len(finished) >= 6
    for span in finished:
        recorded = everything_recorded(span)
        for key in (old_key, new_key.api_key):
            assert key not in recorded
            assert key[8:] not in recorded  # not even the part after the prefix
    if capture is not None:
        assert any("[REDACTED]" in everything_recorded(span) for span in finished)


async def test_capturing_all_headers_without_sanitizing_would_record_the_key(
    spans: InMemorySpanExporter, notify_server: LocalNotifyServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Why docs/recipes.md says to sanitize x-api-key: the instrumentation records a captured
    # header's value as it is.
    monkeypatch.setenv(CAPTURE, ".*")
    instrument(spans)

    async with NotifyClient(notify_server.api_key, base_url=notify_server.base_url) as client:
        await client.api_keys.list()

    [span] = spans.get_finished_spans()
    assert notify_server.api_key in everything_recorded(span)
