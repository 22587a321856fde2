"""A FastAPI app that sends email through one NotifyClient for its whole lifetime.

The lifespan opens the client when the app starts and closes it when the app stops, so
every request shares one connection pool and one in-memory key (and one reload after a
rotation). The key comes from NOTIFY_API_KEY; point it at the local server with
``notify-async serve`` and run::

    uvicorn fastapi_app:app          # from the examples/ folder

FastAPI and uvicorn are not dependencies of notify-async: ``pip install fastapi uvicorn``.
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
    except RateLimitError as exc:
        # The client already retried what it safely could; pass the wait on to the caller.
        retry_after = f"{exc.retry_after:.0f}" if exc.retry_after is not None else "60"
        raise HTTPException(503, "email is rate limited", {"Retry-After": retry_after}) from exc
    except OutcomeUnknownError:
        # The email may have gone out: do not send it again blindly; record it for a check.
        return {"status": "unknown"}
    return {"status": "sent"}
