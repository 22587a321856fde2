"""The ``notify-async`` executable, run as a user runs it, against the local Notify server.

Each test starts the installed console script in a subprocess whose ``PYTHONPATH`` puts this
checkout first, while the local server keeps serving on the test's event loop. A few tests
give the process a pseudo-terminal as stderr, to see what a person at a terminal sees.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import logging
import os
import pty
import re
import ssl
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import trustme
from aiohttp import web

import notify_async
import notify_async._cli
from notify_async._cli import EXIT_CODES, main
from notify_async._credentials import redact
from notify_async.contrib.redis import RedisKeyProvider
from notify_async.testing import Fault, LocalNotifyServer, RedisServer

PROJECT_ROOT = Path(notify_async.__file__).resolve().parent.parent
SCRIPT = Path(sys.executable).with_name("notify-async")
LIST = "GET /api_keys"
SEND = "POST /send-email"
REGENERATE = "POST /api_keys/regenerate"


def cli_env(**variables: str) -> dict[str, str]:
    """The environment of a shell that has only these NOTIFY_* variables set."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("NOTIFY_")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(PROJECT_ROOT), env.get("PYTHONPATH")]))
    return env | variables


def served_by(server: LocalNotifyServer) -> dict[str, str]:
    return cli_env(NOTIFY_API_KEY=server.api_key, NOTIFY_BASE_URL=server.base_url)


async def run(
    *argv: str, env: dict[str, str], stdin: bytes = b"", timeout: float = 60
) -> tuple[int, str, str]:
    """Run ``notify-async ARGV`` to completion: its exit code, stdout and stderr."""
    process = await asyncio.create_subprocess_exec(
        str(SCRIPT),
        *argv,
        env=env,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(stdin), timeout)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


async def run_at_a_terminal(*argv: str, env: dict[str, str]) -> tuple[int, str, str]:
    """Like ``run``, but stderr is a pseudo-terminal, as in an interactive shell."""
    leader, follower = pty.openpty()
    process = await asyncio.create_subprocess_exec(
        str(SCRIPT),
        *argv,
        env=env,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=follower,
    )
    os.close(follower)

    def read_terminal() -> bytes:
        chunks: list[bytes] = []
        while True:
            try:
                chunk = os.read(leader, 4096)
            except OSError:  # EIO: the process closed the terminal's last open end
                return b"".join(chunks)
            if not chunk:
                return b"".join(chunks)
            chunks.append(chunk)

    try:
        terminal = asyncio.create_task(asyncio.to_thread(read_terminal))
        assert process.stdout is not None
        out = await asyncio.wait_for(process.stdout.read(), 60)
        await asyncio.wait_for(process.wait(), 60)
        err = await asyncio.wait_for(terminal, 10)
    finally:
        os.close(leader)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode().replace("\r\n", "\n")


def error_line(err: str) -> str:
    """The one error line; anything before it is a warning or a progress line."""
    assert "Traceback" not in err
    last = err.rstrip("\n").splitlines()[-1]
    assert last.startswith("notify-async: error: "), err
    return last


# -- --version, --help and usage errors -------------------------------------------------------


async def test_version_prints_the_package_version() -> None:
    code, out, err = await run("--version", env=cli_env())

    assert (code, out, err) == (0, f"notify-async {notify_async.__version__}\n", "")


async def test_help_carries_the_exit_code_table_and_a_line_for_every_command() -> None:
    code, out, _ = await run("--help", env=cli_env())

    assert code == 0
    table = {
        int(number): meaning
        for number, meaning in re.findall(r"^\s+(\d+)\s{2}(.+)$", out.split("exit codes:")[1], re.M)
    }
    assert set(table) == {0, 130, *EXIT_CODES.values()}
    for command in ("keys", "send", "serve", "demo"):
        assert re.search(rf"^    {command}\s+\S.+$", out, re.M), command
    code, out, _ = await run("keys", "--help", env=cli_env())
    for action in ("list", "rotate"):
        assert re.search(rf"^    {action}\s+\S.+$", out, re.M), action


@pytest.mark.parametrize(
    "command", [["keys"], ["keys", "list"], ["keys", "rotate"], ["send"], ["serve"], ["demo"]]
)
async def test_every_command_describes_itself_in_its_help(command: list[str]) -> None:
    code, out, _ = await run(*command, "--help", env=cli_env())

    assert code == 0
    usage, description = out.split("\n\n")[:2]
    assert usage.startswith(f"usage: notify-async {' '.join(command)}")
    assert description.strip().endswith(".")
    assert "exit codes: see notify-async --help" in out


async def test_a_typo_in_a_flag_prints_that_commands_usage() -> None:
    code, out, err = await run("keys", "list", "--jsn", env=cli_env())

    assert (code, out) == (2, "")
    assert err.startswith("usage: notify-async keys list ")
    assert "[--json]" in err
    assert err.rstrip().endswith("notify-async keys list: error: unrecognized arguments: --jsn")


@pytest.mark.parametrize(
    ("argv", "words"),
    [
        (["serve", "--port", "99999"], "a port is 0 to 65535, not 99999"),
        (["serve", "--port", "-1"], "a port is 0 to 65535, not -1"),
        (["serve", "--keys", "0"], "must be at least 1"),
        (["keys", "list", "--timeout", "0"], "above 0"),
        (["keys", "list", "--max-retries", "-1"], "must be 0 or more"),
        (["send", "--to", "a@b.c", "--subject", "s", "--message", "m", "--timeout", "x"], "x"),
    ],
    ids=["port-too-high", "port-negative", "no-keys", "timeout-zero", "retries-negative", "nan"],
)
async def test_out_of_range_numbers_are_usage_errors(argv: list[str], words: str) -> None:
    code, out, err = await run(*argv, env=cli_env())

    assert (code, out) == (2, "")
    assert err.startswith(f"usage: notify-async {argv[0]}")
    assert words in err
    assert "unexpected" not in err
    assert "Error" not in err  # no exception class leaks into a usage error


# -- the recipient and blank fields ----------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "words"),
    [
        (["--to", "not-an-email"], "has no @"),
        (["--to", "a@example.com,b@example.com"], "has a comma"),
        (["--to", "Ada <ada@example.com>"], "display name"),
        (["--message", ""], "message must not be empty"),
        (["--subject", " "], "subject must not be empty"),
    ],
    ids=["no-at", "two-recipients", "display-name", "blank-message", "blank-subject"],
)
async def test_send_refuses_what_would_not_be_one_email_before_sending(
    notify_server: LocalNotifyServer, fields: list[str], words: str
) -> None:
    argv = ["--to", "ada@example.com", "--subject", "Hi", "--message", "Hello"]
    for flag, value in zip(fields[::2], fields[1::2], strict=True):
        argv[argv.index(flag) + 1] = value

    code, out, err = await run("send", *argv, env=served_by(notify_server))

    assert (code, out) == (2, "")
    assert words in error_line(err)
    assert notify_server.request_counts[SEND] == 0


# -- --timeout, --max-retries, and what a slow call shows --------------------------------------


async def test_timeout_and_max_retries_bound_a_silent_server(
    notify_server: LocalNotifyServer,
) -> None:
    # A listener that accepts and never answers, for longer than the test runs.
    notify_server.inject(LIST, *[Fault.delay(30)] * 3)
    started = time.monotonic()

    code, out, err = await run(
        "keys", "list", "--timeout", "0.5", "--max-retries", "1", env=served_by(notify_server)
    )

    assert (code, out) == (7, "")
    line = error_line(err)
    assert "timed out" in line
    assert "(2 attempts, each allowed 0.5 s; see --timeout and --max-retries)" in line
    assert notify_server.request_counts[LIST] == 2
    assert time.monotonic() - started < 15  # 2 x 0.5 s, a backoff and two interpreter starts


async def test_max_retries_0_makes_one_attempt(notify_server: LocalNotifyServer) -> None:
    notify_server.inject(LIST, Fault.status(503), Fault.status(503))

    code, _, err = await run("keys", "list", "--max-retries", "0", env=served_by(notify_server))

    assert code == 6
    assert "HTTP 503" in error_line(err)
    assert notify_server.request_counts[LIST] == 1


async def test_at_a_terminal_a_slow_call_says_what_it_waits_for_and_stdout_stays_clean(
    notify_server: LocalNotifyServer,
) -> None:
    # The first attempt outlives its 2.5 s; the second is answered after 1.8 s. Each waits
    # long enough for the progress line, which comes after about a second.
    notify_server.inject(LIST, Fault.delay(30), Fault.delay(1.8))

    code, out, err = await run_at_a_terminal(
        "keys",
        "list",
        "--json",
        "--timeout",
        "2.5",
        "--max-retries",
        "1",
        env=served_by(notify_server),
    )

    assert code == 0, err
    assert [row["prefix"] for row in json.loads(out)] == [notify_server.keys[0].prefix]
    lines = err.splitlines()
    assert lines[0] == "notify-async: waiting for Notify (attempt 1 of 2, 2.5 s timeout)…"
    assert re.fullmatch(r"notify-async: retrying in \d\.\d s…", lines[1]), lines
    assert lines[2] == "notify-async: waiting for Notify (attempt 2 of 2, 2.5 s timeout)…"
    assert len(lines) == 3, lines  # the library's own retry warning is not repeated


async def test_at_a_terminal_a_quick_call_prints_nothing_but_its_data(
    notify_server: LocalNotifyServer,
) -> None:
    code, out, err = await run_at_a_terminal("keys", "list", env=served_by(notify_server))

    assert (code, err) == (0, "")
    assert notify_server.keys[0].prefix in out


async def test_in_a_log_file_a_retry_is_the_librarys_warning_and_no_progress_line(
    notify_server: LocalNotifyServer,
) -> None:
    notify_server.inject(LIST, Fault.delay(30))  # the second attempt is answered at once

    code, out, err = await run(
        "keys",
        "list",
        "--json",
        "--timeout",
        "1",
        "--max-retries",
        "1",
        env=served_by(notify_server),
    )

    assert code == 0
    assert len(json.loads(out)) == 1
    assert "waiting for Notify" not in err
    [warning] = err.splitlines()
    assert warning.startswith("notify-async: WARNING: Retrying GET /api_keys")


async def test_serve_at_a_terminal_does_not_say_it_waits_for_notify(tmp_path: Path) -> None:
    leader, follower = pty.openpty()
    process = await asyncio.create_subprocess_exec(
        str(SCRIPT),
        "serve",
        "--port",
        "0",
        env=cli_env(),
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=follower,
    )
    os.close(follower)
    try:
        assert process.stdout is not None
        printed = [await asyncio.wait_for(process.stdout.readline(), 30) for _ in range(2)]
        assert printed[0].startswith(b"NOTIFY_BASE_URL=")
        await asyncio.sleep(1.5)  # longer than a call waits before it says so
        process.terminate()
        await asyncio.wait_for(process.wait(), 30)
        err = await asyncio.to_thread(os.read, leader, 4096)
    finally:
        os.close(leader)

    assert process.returncode == 0
    assert err.decode().startswith("notify-async: serving a local Notify server at ")
    assert b"waiting" not in err


def test_a_key_rejected_wait_is_announced_at_a_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    # The client announces its grace-window wait with this record (see _Progress); here a
    # command emits it as the client would, to a stderr that is a terminal.
    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    async def waits_for_a_rotated_key(args: object) -> int:
        logging.getLogger("notify_async").info(
            "key rejected; polling the provider",
            extra={"notify_event": "key_rejected_wait", "grace": 3.0},
        )
        return 0

    terminal = Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    monkeypatch.setattr(notify_async._cli, "_keys_list", waits_for_a_rotated_key)

    assert main(["keys", "list"]) == 0
    assert terminal.getvalue() == (
        "notify-async: key rejected; waiting up to 3 s for a rotated key…\n"
    )


# -- the command line's own words ---------------------------------------------------------------


async def test_a_missing_key_file_says_check_key_file(tmp_path: Path) -> None:
    missing = tmp_path / "nope.key"

    code, _, err = await run("keys", "list", "--key-file", str(missing), env=cli_env())

    assert code == 3
    line = error_line(err)
    assert f"the key file {str(missing)!r} does not exist; check --key-file" in line
    assert "FileKeyProvider" not in line


async def test_a_rejected_key_from_a_file_names_the_file(
    notify_server: LocalNotifyServer, tmp_path: Path
) -> None:
    key_file = tmp_path / "notify.key"
    key_file.write_text("nk_revoked_key_000000000000000000000\n")

    code, _, err = await run(
        "keys",
        "list",
        "--key-file",
        str(key_file),
        env=cli_env(NOTIFY_BASE_URL=notify_server.base_url),
    )

    assert code == 4
    line = error_line(err)
    assert f"the key in {str(key_file)!r} was rejected" in line
    assert "check --key-file" in line
    assert "FileKeyProvider" not in line


async def test_a_rejected_key_from_the_environment_names_the_variable(
    notify_server: LocalNotifyServer,
) -> None:
    env = served_by(notify_server) | {"NOTIFY_API_KEY": "nk_revoked_key_000000000000000000000"}

    code, _, err = await run("send", "--to", "a@b.c", "--subject", "s", "--message", "m", env=env)

    assert code == 4
    line = error_line(err)
    assert "HTTP 401" in line
    assert "the key in NOTIFY_API_KEY was rejected; export the current key" in line
    assert "provider" not in line
    assert notify_server.emails == []


async def test_a_404_says_check_base_url(notify_server: LocalNotifyServer) -> None:
    wrong = notify_server.base_url.replace("/api/public/v1", "/api/v1")

    code, _, err = await run("keys", "list", "--base-url", wrong, env=served_by(notify_server) | {})

    assert code == 6
    line = error_line(err)
    assert "HTTP 404" in line
    assert "check --base-url (it should end in /api/public/v1)" in line
    assert repr(wrong) in line


# -- --cacert: a private CA ---------------------------------------------------------------------


@pytest.fixture
async def https_notify(tmp_path: Path) -> AsyncIterator[tuple[str, Path]]:
    """A Notify stand-in over HTTPS with a private CA: its base URL and the CA's PEM file."""
    ca = trustme.CA(organization_name="notify-async CLI test CA")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(context)
    ca_file = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))

    async def list_keys(request: web.Request) -> web.Response:
        listed = {
            "id": "key-1",
            "name": "Production",
            "createdAt": "2026-11-27T06:40:12.345Z",
            "updatedAt": "2026-11-27T06:40:12.345Z",
            "active": True,
            "prefix": "nk_priva...",
        }
        return web.json_response({"success": True, "data": [listed]})

    app = web.Application()
    app.router.add_get("/api/public/v1/api_keys", list_keys)
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=context)
    await site.start()
    try:
        yield f"https://127.0.0.1:{runner.addresses[0][1]}/api/public/v1", ca_file
    finally:
        await runner.cleanup()


async def test_cacert_trusts_a_private_ca(https_notify: tuple[str, Path]) -> None:
    base_url, ca_file = https_notify
    env = cli_env(NOTIFY_API_KEY="nk_private_ca_key_00000000000000000", NOTIFY_BASE_URL=base_url)

    code, out, err = await run("keys", "list", "--json", "--cacert", str(ca_file), env=env)

    assert (code, err) == (0, "")
    assert [row["prefix"] for row in json.loads(out)] == ["nk_priva..."]


async def test_without_cacert_the_error_says_to_pass_it(https_notify: tuple[str, Path]) -> None:
    base_url, _ = https_notify
    env = cli_env(NOTIFY_API_KEY="nk_private_ca_key_00000000000000000", NOTIFY_BASE_URL=base_url)

    code, _, err = await run("keys", "list", env=env)

    assert code == 7
    line = error_line(err)
    assert "could not verify the server's TLS certificate" in line
    assert "pass --cacert FILE" in line
    assert "ssl=" not in line


def test_cacert_adds_the_ca_to_the_systems_trust_store(https_ca_file: Path) -> None:
    # In-process: which certificates a context trusts is not visible from outside.
    system = ssl.create_default_context().cert_store_stats()["x509_ca"]

    context = notify_async._cli._tls(argparse.Namespace(cacert=https_ca_file))

    assert context is not None
    assert context.cert_store_stats()["x509_ca"] == system + 1
    assert context.verify_mode == ssl.CERT_REQUIRED
    assert context.check_hostname


@pytest.fixture
def https_ca_file(tmp_path: Path) -> Path:
    ca_file = tmp_path / "ca.pem"
    trustme.CA().cert_pem.write_to_path(str(ca_file))
    return ca_file


async def test_cacert_that_is_not_a_certificate_is_a_bad_argument(tmp_path: Path) -> None:
    env = cli_env(NOTIFY_API_KEY="nk_private_ca_key_00000000000000000")
    not_pem = tmp_path / "ca.pem"
    not_pem.write_text("hello\n")

    code, _, err = await run("keys", "list", "--cacert", str(tmp_path / "none.pem"), env=env)
    assert code == 2
    assert "does not exist" in error_line(err)

    code, _, err = await run("keys", "list", "--cacert", str(not_pem), env=env)
    assert code == 2
    assert "holds no usable PEM certificate" in error_line(err)


# -- keys rotate --redis-url --------------------------------------------------------------------


async def test_keys_rotate_redis_url_rotates_the_fleets_key_in_redis(
    notify_server: LocalNotifyServer, redis_server: RedisServer
) -> None:
    fleet = RedisKeyProvider(redis_server.url, redis_key="myapp:notify")
    await fleet.store(notify_server.api_key)
    old = notify_server.api_key
    env = cli_env(NOTIFY_BASE_URL=notify_server.base_url)

    code, out, err = await run(
        "keys", "rotate", "--redis-url", redis_server.url, "--redis-key", "myapp:notify", env=env
    )

    assert code == 0, err
    new = notify_server.api_key
    assert new != old
    assert await fleet.load() == new  # stored where the fleet reads it
    assert out == redact(new) + "\n"
    assert new not in err
    assert "myapp:notify" in err
    assert notify_server.request_counts[REGENERATE] == 1
    assert notify_server.auth_failures == 0


async def test_keys_rotate_redis_url_with_no_key_in_redis_rotates_nothing(
    notify_server: LocalNotifyServer, redis_server: RedisServer
) -> None:
    env = cli_env(NOTIFY_BASE_URL=notify_server.base_url)

    code, out, err = await run("keys", "rotate", "--redis-url", redis_server.url, env=env)

    assert (code, out) == (3, "")
    error_line(err)
    assert notify_server.request_counts[REGENERATE] == 0


async def test_keys_rotate_needs_a_place_to_store_the_key(notify_server: LocalNotifyServer) -> None:
    code, _, err = await run("keys", "rotate", env=served_by(notify_server))

    assert code == 2
    assert "one of the arguments --key-file --redis-url is required" in err
    assert notify_server.request_counts[REGENERATE] == 0


# -- the demo -----------------------------------------------------------------------------------


async def run_demo() -> tuple[int, str, str, float]:
    started = time.monotonic()
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "notify_async",
        "demo",
        env=cli_env(),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode(), time.monotonic() - started


def number(pattern: str, text: str) -> int:
    match = re.search(pattern, text)
    assert match is not None, (pattern, text)
    return int(match[1])


async def test_the_demo_rotates_twice_at_once_with_no_failed_send() -> None:
    code, out, err, seconds = await run_demo()

    assert seconds < 30
    assert (code, err) == (0, "")
    failed = number(r"sends failed: +(\d+)", out)
    accepted = number(r"sends accepted: +(\d+)", out)
    issued = number(r"\(issued (\d+)\)", out)
    regenerates = number(r"regenerates seen by the server: (\d+)", out)
    assert issued > 0
    assert (failed, accepted) == (0, issued)
    # Both workers called rotate() at once; the file's lease made it one regenerate, and
    # both ended on the same, live key.
    assert regenerates == 1
    keys = re.findall(r"rotate\(\) in worker \d: now (\S+)", out)
    assert len(keys) == 2
    assert keys[0] == keys[1]
