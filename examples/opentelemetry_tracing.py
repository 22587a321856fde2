r"""Trace every request notify-async sends, with OpenTelemetry.

notify-async sends through aiohttp, so OpenTelemetry's aiohttp client instrumentation
sees every attempt: the first, each retry and the replay after a 401, each as a client
span with the method, the URL and the status. Instrument before the client opens its
session (its ``async with``).

The key travels in the ``x-api-key`` header. The instrumentation records no request header
unless ``OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_CLIENT_REQUEST`` names it; if you
capture headers, list ``x-api-key`` in ``OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SANITIZE_FIELDS``
too, as below, or the key ends up in your traces.

OpenTelemetry is not a dependency of notify-async:
``pip install opentelemetry-sdk opentelemetry-instrumentation-aiohttp-client``. This file
starts its own local Notify server, so nothing else needs to run. From the repository
root::

    python examples/opentelemetry_tracing.py

It prints one line per span: the 503 that was retried, then the send that succeeded.
"""

from __future__ import annotations

import asyncio
import os

from opentelemetry.instrumentation.aiohttp_client import AioHttpClientInstrumentor
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from notify_async import NotifyClient
from notify_async.testing import Fault, LocalNotifyServer


def instrument_aiohttp(provider: TracerProvider) -> None:
    """Trace every aiohttp request, notify-async's included, into ``provider``."""
    # Never let a captured header carry the key into a trace.
    sanitize = "OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SANITIZE_FIELDS"
    os.environ[sanitize] = ",".join(filter(None, [os.environ.get(sanitize), "x-api-key"]))
    AioHttpClientInstrumentor().instrument(tracer_provider=provider)


async def main() -> None:
    # In production: BatchSpanProcessor(OTLPSpanExporter()) instead of the in-memory list.
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    instrument_aiohttp(provider)

    async with LocalNotifyServer() as server:
        # The first attempt is turned away with a 503; the client retries it.
        server.inject("POST /send-email", Fault.status(503, headers={"Retry-After": "0"}))
        async with NotifyClient(server.api_key, base_url=server.base_url) as client:
            await client.emails.send(to="ada@example.com", subject="Hi", message="Hello")

    for span in exporter.get_finished_spans():
        attributes = dict(span.attributes or {})
        print(span.name, attributes.get("http.url"), attributes.get("http.status_code"))


if __name__ == "__main__":
    asyncio.run(main())
