"""An aiohttp web app that opens one NotifyClient with the app and closes it on shutdown.

``cleanup_ctx`` runs the code before ``yield`` at startup and the code after it at
cleanup, so the client lives exactly as long as the app. The key comes from
NOTIFY_API_KEY; with ``notify-async serve`` running, start it with::

    python examples/aiohttp_app.py   # then: curl -X POST localhost:8080/signups -d '...'
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from aiohttp import web

from notify_async import NotifyClient, OutcomeUnknownError, RateLimitError

NOTIFY = web.AppKey("notify", NotifyClient)


async def notify_client(app: web.Application) -> AsyncIterator[None]:
    async with NotifyClient() as client:  # a missing key fails the startup
        app[NOTIFY] = client
        yield


async def signup(request: web.Request) -> web.Response:
    data = await request.json()
    try:
        await request.app[NOTIFY].emails.send(
            to=data["email"],
            subject=f"Welcome, {data['name']}!",
            message="Thanks for signing up.",
        )
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
    web.run_app(make_app(), host="127.0.0.1", port=8080)
