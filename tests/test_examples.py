"""The recipes in ``examples/`` work as their documentation says, against the local server."""

from __future__ import annotations

import ast
import asyncio
import contextlib
import importlib.util
import json
import os
import re
import signal
import sys
import textwrap
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, MutableMapping
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer
from opentelemetry.instrumentation.aiohttp_client import AioHttpClientInstrumentor
from support import free_port

from notify_async import CredentialError, FileKeyProvider, NotifyClient, NotifyError
from notify_async.testing import Fault, LocalNotifyServer, instant_retries

PROJECT_ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = PROJECT_ROOT / "examples"

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


@pytest.mark.parametrize(
    ("body", "error"),
    [
        (b"...", 'the body must be JSON: {"email": "...", "name": "..."}'),
        (b"[1, 2]", 'the body must be a JSON object: {"email": "...", "name": "..."}'),
        (b'{"email": "ada@example.com"}', "missing or not a string: name"),
        (b'{"email": 3, "name": ""}', "missing or not a string: email, name"),
    ],
    ids=["not-json", "not-an-object", "no-name", "wrong-types"],
)
async def test_aiohttp_app_answers_a_bad_body_with_400_and_a_json_error(
    env: LocalNotifyServer, body: bytes, error: str
) -> None:
    example = load_example("aiohttp_app")

    async with TestClient(TestServer(example.make_app())) as http:
        response = await http.post("/signups", data=body)
        assert response.status == 400
        assert await response.json() == {"error": error}

    assert env.request_counts["POST /send-email"] == 0


async def test_aiohttp_app_answers_400_for_an_email_that_is_not_one_address(
    env: LocalNotifyServer,
) -> None:
    example = load_example("aiohttp_app")

    async with TestClient(TestServer(example.make_app())) as http:
        response = await http.post("/signups", json={"email": "a@x.com, b@x.com", "name": "A"})
        assert response.status == 400
        assert "has a comma" in (await response.json())["error"]

    assert env.request_counts["POST /send-email"] == 0


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


async def test_worker_without_its_key_file_says_so_in_one_line(tmp_path: Path) -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        str(EXAMPLES / "worker.py"),
        "--key-file",
        str(tmp_path / "missing.key"),
        env={"PYTHONPATH": str(PROJECT_ROOT), "PATH": ""},
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), 60)

    assert (process.returncode, out) == (2, b"")
    [line] = err.decode().splitlines()
    assert line.startswith("worker: the key file ")
    assert "does not exist" in line


# -- OpenTelemetry ---------------------------------------------------------------------------------


async def test_opentelemetry_recipe_traces_each_attempt_with_the_key_header_sanitized(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    sanitize = "OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SANITIZE_FIELDS"
    monkeypatch.setenv(sanitize, "set-cookie")  # a user's own setting is kept
    example = load_example("opentelemetry_tracing")
    try:
        await example.main()
    finally:
        AioHttpClientInstrumentor().uninstrument()

    assert os.environ[sanitize] == "set-cookie,x-api-key"
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[0] + " " + line.split()[2] for line in lines] == ["POST 503", "POST 200"]


# -- every example runs exactly as its docstring says ----------------------------------------------

# The ports the docstrings use, each replaced by a free one so that runs never collide; that
# is the only change made to the documented commands.
DOCUMENTED_PORTS = ("8025", "8080", "8000")


def documented_shells(example: Path) -> list[str]:
    """The literal blocks (``::``) of an example's docstring: one per shell, in order."""
    docstring = ast.get_docstring(ast.parse(example.read_text()))
    assert docstring is not None
    shells: list[str] = []
    lines = docstring.splitlines()
    index = 0
    while index < len(lines):
        index += 1
        if not lines[index - 1].rstrip().endswith("::"):
            continue
        body: list[str] = []
        while index < len(lines) and (not lines[index].strip() or lines[index][:1] == " "):
            body.append(lines[index])
            index += 1
        shells.append(textwrap.dedent("\n".join(body)).strip())
    return shells


async def wait_for_port(port: int, process: asyncio.subprocess.Process, stderr_path: Path) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.returncode is not None:
            stderr = (await asyncio.to_thread(stderr_path.read_text, errors="replace"))[-4000:]
            raise AssertionError(
                f"the shell listening on {port} exited with {process.returncode}:\n{stderr}"
            )
        with contextlib.suppress(OSError):
            _, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.close()
            await writer.wait_closed()
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"nothing listened on port {port} within 30 s")


EXPECTED_OUTPUT: dict[str, list[str]] = {
    "aiohttp_app": [
        r'\{"status": "sent"\} 202',
        r'\{"error": "missing or not a string: name"\} 400',
        r'\{"error": "to must be an email address like name@example.com, got .+ no @"\} 400',
    ],
    "fastapi_app": [
        r'\{"status":"sent"\} 202',
        r'\{"detail":"to must be an email address like name@example.com, got .+ no @"\} 400',
    ],
    "worker": [r'\{"sent": 2, "unknown": 0, "failed": 0\}'],
    "opentelemetry_tracing": [
        r"POST http://127\.0\.0\.1:\d+/api/public/v1/send-email 503",
        r"POST http://127\.0\.0\.1:\d+/api/public/v1/send-email 200",
    ],
    "secret_manager_provider": [
        r"billing rotated the key to nk_.+; the secret holds it now",
        r"signup still holds nk_.+, which no longer works",
        r"signup sent its next email with nk_.+",
        r"rotated key [-0-9a-f]+: 2 emails sent, 3 secret reads, 1 secret write",
    ],
}


def test_every_example_has_its_commands_and_expected_output() -> None:
    assert sorted(EXPECTED_OUTPUT) == sorted(path.stem for path in EXAMPLES.glob("*.py"))


@pytest.mark.parametrize("name", sorted(EXPECTED_OUTPUT))
async def test_the_example_runs_as_its_docstring_says(name: str, tmp_path: Path) -> None:
    """Every shell block of the docstring but the last is a server, run in the background;
    the last one runs to the end, and its output is what the docstring promises."""
    shells = documented_shells(EXAMPLES / f"{name}.py")
    assert shells, f"examples/{name}.py gives no commands to run it"
    ports = {documented: str(free_port()) for documented in DOCUMENTED_PORTS}
    for documented, port in ports.items():
        shells = [re.sub(rf"\b{documented}\b", port, shell) for shell in shells]
    # The repository root as the user has it, in a folder of its own for the key file.
    (tmp_path / "examples").symlink_to(EXAMPLES)
    env = {k: v for k, v in os.environ.items() if not k.startswith("NOTIFY_")}
    env |= {
        "PATH": os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")]),
        "PYTHONPATH": str(PROJECT_ROOT),
    }
    servers: list[asyncio.subprocess.Process] = []
    try:
        for number, shell in enumerate(shells[:-1]):
            listens_on = re.search(r"--port (\d+)", shell)
            assert listens_on is not None, f"a background shell says no --port: {shell}"
            # Its stderr goes to a file, so that a shell that exits early says why.
            stderr_path = tmp_path / f"shell-{number}.stderr"
            with stderr_path.open("wb") as stderr:
                server = await asyncio.create_subprocess_exec(
                    "bash",
                    "-c",
                    shell,
                    cwd=tmp_path,
                    env=env,
                    stdout=asyncio.subprocess.DEVNULL,
                    stderr=stderr,
                    start_new_session=True,  # so that the server under bash stops with it
                )
            servers.append(server)
            await wait_for_port(int(listens_on[1]), server, stderr_path)
        last = await asyncio.create_subprocess_exec(
            "bash",
            "-e",
            "-c",
            shells[-1],
            cwd=tmp_path,
            env=env,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, err = await asyncio.wait_for(last.communicate(), 60)
    finally:
        for server in servers:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(server.pid, signal.SIGTERM)
            await asyncio.wait_for(server.wait(), 20)

    assert last.returncode == 0, err.decode()
    lines = out.decode().splitlines()
    assert len(lines) == len(EXPECTED_OUTPUT[name]), lines
    for line, pattern in zip(lines, EXPECTED_OUTPUT[name], strict=True):
        assert re.fullmatch(pattern, line), (line, pattern)
