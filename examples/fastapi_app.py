r"""A FastAPI app that sends email through one NotifyClient for its whole lifetime.

The lifespan opens the client when the app starts and closes it when the app stops, so
every request shares one connection pool and one in-memory key (and one reload after a
rotation). The key comes from NOTIFY_API_KEY.

FastAPI and uvicorn are not dependencies of notify-async: ``pip install fastapi uvicorn``.
Run it against the local Notify server, from the repository root. In one shell::

    notify-async serve --port 8025 --key-file notify.key

In a second one::

    NOTIFY_BASE_URL=http://127.0.0.1:8025/api/public/v1 NOTIFY_API_KEY="$(cat notify.key)" \
        uvicorn --app-dir examples fastapi_app:app --port 8000

In a third one::

    curl -s -w ' %{http_code}\n' localhost:8000/signups -H 'Content-Type: application/json' \
        -d '{"email": "ada@example.com", "name": "Ada"}'
    curl -s -w ' %{http_code}\n' localhost:8000/signups -H 'Content-Type: application/json' \
        -d '{"email": "ada", "name": "Ada"}'

The first prints ``{"status":"sent"} 202``; the second a JSON error and 400.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, TypedDict

from fastapi import Depends, FastAPI, HTTPException, Request
from pydantic import BaseModel

from notify_async import NotifyClient, OutcomeUnknownError, RateLimitError


class State(TypedDict):
    notify: NotifyClient


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[State]:
    # `async with` loads the key now, so a missing key stops the app at startup, not at
    # the first request; leaving the block closes the client's connections.
    async with NotifyClient() as client:
        yield {"notify": client}  # lifespan state: request.state.notify in every request


app = FastAPI(lifespan=lifespan)


def notify_client(request: Request) -> NotifyClient:
    """The app's one client, as a dependency (tests can override it)."""
    client: NotifyClient = request.state.notify
    return client


Notify = Annotated[NotifyClient, Depends(notify_client)]


class Signup(BaseModel):
    email: str
    name: str


@app.post("/signups", status_code=202)
async def signup(signup: Signup, notify: Notify) -> dict[str, str]:
    try:
        await notify.emails.send(
            to=signup.email,
            subject=f"Welcome, {signup.name}!",
            message="Thanks for signing up.",
        )
    except ValueError as exc:
        # Refused before sending (an email that is not one address): the caller can fix it.
        raise HTTPException(400, str(exc)) from exc
    except RateLimitError as exc:
        # The client already retried what it safely could; pass the wait on to the caller.
        retry_after = f"{exc.retry_after:.0f}" if exc.retry_after is not None else "60"
        raise HTTPException(503, "email is rate limited", {"Retry-After": retry_after}) from exc
    except OutcomeUnknownError:
        # The email may have gone out: do not send it again blindly; record it for a check.
        return {"status": "unknown"}
    return {"status": "sent"}
