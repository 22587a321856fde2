r"""An aiohttp web app that opens one NotifyClient with the app and closes it on shutdown.

``cleanup_ctx`` runs the code before ``yield`` at startup and the code after it at
cleanup, so the client lives exactly as long as the app. The key comes from
NOTIFY_API_KEY. A bad request body gets a 400 with a JSON error, not a 500.

Run it against the local Notify server, from the repository root. In one shell::

    notify-async serve --port 8025 --key-file notify.key

In a second one::

    NOTIFY_BASE_URL=http://127.0.0.1:8025/api/public/v1 NOTIFY_API_KEY="$(cat notify.key)" \
        python examples/aiohttp_app.py --port 8080

In a third one::

    curl -s -w ' %{http_code}\n' localhost:8080/signups \
        -d '{"email": "ada@example.com", "name": "Ada"}'
    curl -s -w ' %{http_code}\n' localhost:8080/signups -d '{"email": "ada@example.com"}'
    curl -s -w ' %{http_code}\n' localhost:8080/signups -d '{"email": "ada", "name": "Ada"}'

The first prints ``{"status": "sent"} 202``; the other two print a JSON error and 400.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import AsyncIterator
from typing import Any

from aiohttp import web

from notify_async import NotifyClient, OutcomeUnknownError, RateLimitError

NOTIFY = web.AppKey("notify", NotifyClient)


async def notify_client(app: web.Application) -> AsyncIterator[None]:
    async with NotifyClient() as client:  # a missing key fails the startup
        app[NOTIFY] = client
        yield


def bad_request(error: str) -> web.Response:
    return web.json_response({"error": error}, status=400)


async def read_signup(request: web.Request) -> dict[str, str] | web.Response:
    """The signup's email and name, or the 400 that says what is wrong with the body."""
    try:
        data: Any = json.loads(await request.read())
    except (ValueError, UnicodeDecodeError):
        return bad_request('the body must be JSON: {"email": "...", "name": "..."}')
    if not isinstance(data, dict):
        return bad_request('the body must be a JSON object: {"email": "...", "name": "..."}')
    missing = [f for f in ("email", "name") if not isinstance(data.get(f), str) or not data[f]]
    if missing:
        return bad_request(f"missing or not a string: {', '.join(missing)}")
    return {"email": data["email"], "name": data["name"]}


async def signup(request: web.Request) -> web.Response:
    fields = await read_signup(request)
    if isinstance(fields, web.Response):
        return fields
    try:
        await request.app[NOTIFY].emails.send(
            to=fields["email"],
            subject=f"Welcome, {fields['name']}!",
            message="Thanks for signing up.",
        )
    except ValueError as exc:
        # The client refuses what cannot be sent (an email that is not one address) before
        # sending anything; the caller can fix that.
        return bad_request(str(exc))
    except RateLimitError as exc:
        retry_after = f"{exc.retry_after:.0f}" if exc.retry_after is not None else "60"
        raise web.HTTPServiceUnavailable(headers={"Retry-After": retry_after}) from exc
    except OutcomeUnknownError:
        # The email may have gone out; sending it again could deliver it twice.
        return web.json_response({"status": "unknown"}, status=202)
    return web.json_response({"status": "sent"}, status=202)


def make_app() -> web.Application:
    app = web.Application()
    app.cleanup_ctx.append(notify_client)
    app.router.add_post("/signups", signup)
    return app


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="Serve POST /signups on 127.0.0.1.")
    parser.add_argument("--port", type=int, default=8080)
    web.run_app(make_app(), host="127.0.0.1", port=parser.parse_args().port)
