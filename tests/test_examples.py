"""The recipes in ``examples/`` work as their documentation says, against the local server."""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import json
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, MutableMapping
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from notify_async import CredentialError, FileKeyProvider, NotifyClient, NotifyError
from notify_async.testing import Fault, LocalNotifyServer, instant_retries

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"

Message = MutableMapping[str, Any]
ASGIApp = Callable[
    [Message, Callable[[], Awaitable[Message]], Callable[[Message], Awaitable[None]]],
    Coroutine[Any, Any, None],
]


def load_example(name: str) -> ModuleType:
    """Import ``examples/<name>.py`` (the folder is not a package: it is read, not installed)."""
    spec = importlib.util.spec_from_file_location(f"examples_{name}", EXAMPLES / f"{name}.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while being built
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def env(notify_server: LocalNotifyServer, monkeypatch: pytest.MonkeyPatch) -> LocalNotifyServer:
    """The environment an app would get in production, pointing at the local server."""
    monkeypatch.setenv("NOTIFY_API_KEY", notify_server.api_key)
    monkeypatch.setenv("NOTIFY_BASE_URL", notify_server.base_url)
    return notify_server


# -- FastAPI, driven through ASGI as a server such as uvicorn drives it ----------------------------


@contextlib.asynccontextmanager
async def lifespan(app: ASGIApp) -> AsyncIterator[dict[str, Any]]:
    """Run the app's startup, yield its lifespan state, then run its shutdown."""
    state: dict[str, Any] = {}
    to_app: asyncio.Queue[Message] = asyncio.Queue()
    from_app: asyncio.Queue[Message] = asyncio.Queue()
    scope = {"type": "lifespan", "asgi": {"version": "3.0", "spec_version": "2.0"}, "state": state}
    task = asyncio.create_task(app(scope, to_app.get, from_app.put))
    await to_app.put({"type": "lifespan.startup"})
    started = await from_app.get()
    if started["type"] == "lifespan.startup.failed":
        await task  # re-raises what failed the startup
    assert started["type"] == "lifespan.startup.complete", started
    try:
        yield state
    finally:
        await to_app.put({"type": "lifespan.shutdown"})
        stopped = await from_app.get()
        await task
        assert stopped["type"] == "lifespan.shutdown.complete", stopped


async def post_json(
    app: ASGIApp, state: dict[str, Any], path: str, body: object
) -> tuple[int, dict[str, str], Any]:
    """One HTTP request through ASGI; returns the status, the headers and the JSON body."""
    raw = json.dumps(body).encode()
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(raw))],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8000),
        "state": dict(state),  # a server hands each request a shallow copy
    }
    done = asyncio.Event()
    request_messages = [{"type": "http.request", "body": raw, "more_body": False}]
    sent: list[Message] = []

    async def receive() -> Message:
        if request_messages:
            return request_messages.pop()
        await done.wait()  # the client stays connected until the response is complete
        return {"type": "http.disconnect"}

    async def send(message: Message) -> None:
        sent.append(message)

    await app(scope, receive, send)
    done.set()
    start, *chunks = sent
    headers = {k.decode(): v.decode() for k, v in start["headers"]}
    return start["status"], headers, json.loads(b"".join(c.get("body", b"") for c in chunks))


SIGNUP = {"email": "ada@example.com", "name": "Ada"}


async def test_fastapi_lifespan_opens_one_client_and_closes_it(env: LocalNotifyServer) -> None:
    example = load_example("fastapi_app")

    async with lifespan(example.app) as state:
        client = state["notify"]
        assert isinstance(client, NotifyClient)
        for _ in range(2):
            status, _, body = await post_json(example.app, state, "/signups", SIGNUP)
            assert (status, body) == (202, {"status": "sent"})

    assert [(e.to, e.subject) for e in env.emails] == [("ada@example.com", "Welcome, Ada!")] * 2
    with pytest.raises(NotifyError, match="closed"):
        await client.api_keys.list()


async def test_fastapi_app_does_not_start_without_a_key(
    env: LocalNotifyServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("NOTIFY_API_KEY")
    example = load_example("fastapi_app")

    with pytest.raises(CredentialError, match="NOTIFY_API_KEY"):
        async with lifespan(example.app):
            pass


async def test_fastapi_app_passes_a_long_rate_limit_on_as_503(env: LocalNotifyServer) -> None:
    example = load_example("fastapi_app")
    env.inject("POST /send-email", Fault.status(429, headers={"Retry-After": "120"}))

    async with lifespan(example.app) as state:
        status, headers, _ = await post_json(example.app, state, "/signups", SIGNUP)

    assert (status, headers["retry-after"]) == (503, "120")
    assert env.emails == []


async def test_fastapi_app_does_not_resend_after_a_lost_reply(env: LocalNotifyServer) -> None:
    example = load_example("fastapi_app")
    env.inject("POST /send-email", Fault.drop_after())

    async with lifespan(example.app) as state:
        status, _, body = await post_json(example.app, state, "/signups", SIGNUP)

    assert (status, body) == (202, {"status": "unknown"})
    assert len(env.emails) == 1  # it did go out, exactly once
    assert env.request_counts["POST /send-email"] == 1


# -- aiohttp ---------------------------------------------------------------------------------------


async def test_aiohttp_app_shares_one_client_from_cleanup_ctx(env: LocalNotifyServer) -> None:
    example = load_example("aiohttp_app")
    app = example.make_app()

    async with TestClient(TestServer(app)) as http:
        client = app[example.NOTIFY]
        for name in ("Ada", "Grace"):
            response = await http.post("/signups", json={"email": "x@example.com", "name": name})
            assert response.status == 202
            assert await response.json() == {"status": "sent"}

    assert [e.subject for e in env.emails] == ["Welcome, Ada!", "Welcome, Grace!"]
    with pytest.raises(NotifyError, match="closed"):
        await client.api_keys.list()


async def test_aiohttp_app_answers_503_with_retry_after_when_rate_limited(
    env: LocalNotifyServer,
) -> None:
    example = load_example("aiohttp_app")
    env.inject("POST /send-email", Fault.status(429, headers={"Retry-After": "90"}))

    async with TestClient(TestServer(example.make_app())) as http:
        response = await http.post("/signups", json=SIGNUP)
        assert (response.status, response.headers["Retry-After"]) == (503, "90")

    assert env.emails == []


# -- the background worker -------------------------------------------------------------------------


async def test_worker_sends_every_job_once_across_rotations(tmp_path: Path) -> None:
    example = load_example("worker")
    key_file = tmp_path / "notify.key"
    jobs_count = 300
    async with LocalNotifyServer(key_file=key_file) as server:
        jobs: asyncio.Queue[Any] = asyncio.Queue()
        for number in range(jobs_count):
            jobs.put_nowait(example.EmailJob(f"user{number}@example.com", "Hi", str(number)))
        async with NotifyClient(
            credentials=FileKeyProvider(key_file), base_url=server.base_url
        ) as client:
            workers = asyncio.create_task(example.run_workers(client, jobs, concurrency=8))
            # An operator rotates twice while the queue drains; the server writes each new
            # key to the file, as a deploy would.
            for threshold in (100, 200):
                # The server has no event for "N emails accepted"; poll it.
                while len(server.emails) < threshold:  # noqa: ASYNC110
                    await asyncio.sleep(0.001)
                server.rotate()
            for _ in range(8):
                jobs.put_nowait(None)
            tally = await workers

        assert (tally.sent, tally.unknown, tally.failed) == (jobs_count, [], [])
        sent_to = [email.to for email in server.emails]
        assert sorted(sent_to) == sorted(f"user{n}@example.com" for n in range(jobs_count))
        assert server.auth_failures >= 2  # both rotations hit requests in flight...
        assert client.key_loads <= 3  # ...and each cost one reload for all eight senders


async def test_worker_runs_as_a_program_on_json_lines(tmp_path: Path) -> None:
    key_file = tmp_path / "notify.key"
    async with LocalNotifyServer(key_file=key_file) as server:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            str(EXAMPLES / "worker.py"),
            "--key-file",
            str(key_file),
            env={"NOTIFY_BASE_URL": server.base_url, "PATH": ""},
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        lines = [
            json.dumps({"to": f"u{n}@example.com", "subject": "s", "message": "m"})
            for n in range(5)
        ]
        out, err = await asyncio.wait_for(
            process.communicate("\n".join(lines).encode() + b"\n"), 60
        )

        assert process.returncode == 0, err.decode()
        assert json.loads(out) == {"sent": 5, "unknown": 0, "failed": 0}
        assert len(server.emails) == 5


async def test_worker_reports_a_lost_reply_as_unknown_and_does_not_resend(
    notify_server: LocalNotifyServer,
) -> None:
    example = load_example("worker")
    notify_server.inject("POST /send-email", Fault.drop_after())
    jobs: asyncio.Queue[Any] = asyncio.Queue()
    job = example.EmailJob("ada@example.com", "Invoice", "Paid.")
    for item in (job, None):
        jobs.put_nowait(item)

    async with NotifyClient(notify_server.api_key, base_url=notify_server.base_url) as client:
        with instant_retries():
            tally = await example.run_workers(client, jobs, concurrency=1)

    assert (tally.sent, tally.unknown, tally.failed) == (0, [job], [])
    assert len(notify_server.emails) == 1


# -- the secret-manager provider -------------------------------------------------------------------


async def test_secret_manager_provider_spreads_a_rotation_through_the_secret(
    notify_server: LocalNotifyServer,
) -> None:
    example = load_example("secret_manager_provider")
    secrets = example.SecretManager({"prod/notify": notify_server.api_key})

    def client() -> NotifyClient:
        provider = example.notify_key_provider(secrets, "prod/notify")
        return NotifyClient(credentials=provider, base_url=notify_server.base_url)

    async with client() as rotator, client() as other:
        result = await rotator.api_keys.rotate()
        assert secrets.get_secret_value("prod/notify") == result.api_key == notify_server.api_key
        await other.emails.send(to="ada@example.com", subject="s", message="m")

    assert secrets.writes == 1
    assert secrets.reads == 1 + 1 + 1 + 1  # each first load, the other's reload, our check
    assert notify_server.auth_failures == 1
    assert len(notify_server.emails) == 1


async def test_secret_manager_example_runs(capsys: pytest.CaptureFixture[str]) -> None:
    example = load_example("secret_manager_provider")

    await example.main()

    out = capsys.readouterr().out
    assert "2 emails sent, 3 secret reads, 1 secret write" in out
