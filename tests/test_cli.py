"""The ``notify-async`` command line: every command, its output streams and its exit codes.

``main()`` runs its own event loop with ``asyncio.run``, so the in-process tests call it in
a worker thread while the local server keeps serving on the test's loop.
"""

from __future__ import annotations

import asyncio
import io
import json
import os
import stat
import sys
from collections.abc import AsyncIterator
from importlib.metadata import entry_points
from pathlib import Path

import pytest

import notify_async._cli
from notify_async import NotifyClient
from notify_async._cli import EXIT_CODES, main
from notify_async._credentials import redact
from notify_async.testing import Fault, LocalNotifyServer, instant_retries


async def cli(*argv: str) -> int:
    """Run the command line in-process, off the event loop that serves the local server."""
    return await asyncio.to_thread(main, list(argv))


@pytest.fixture(autouse=True)
def _no_stray_notify_env(monkeypatch: pytest.MonkeyPatch) -> None:
    # A developer's own NOTIFY_* variables must not leak into these tests.
    for name in ("NOTIFY_API_KEY", "NOTIFY_BASE_URL"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def env(notify_server: LocalNotifyServer, monkeypatch: pytest.MonkeyPatch) -> LocalNotifyServer:
    """Point the CLI at the local server through the environment, as a user's shell would."""
    monkeypatch.setenv("NOTIFY_API_KEY", notify_server.api_key)
    monkeypatch.setenv("NOTIFY_BASE_URL", notify_server.base_url)
    return notify_server


@pytest.fixture
def key_file(env: LocalNotifyServer, tmp_path: Path) -> Path:
    path = tmp_path / "notify.key"
    path.write_text(env.api_key + "\n")
    path.chmod(0o600)
    return path


def read_key(path: Path) -> str:
    return path.read_text().strip()


def file_mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def one_error_line(err: str) -> str:
    """The error's one line; logged retry warnings may come before it."""
    lines = [line for line in err.splitlines() if not line.startswith("notify-async: WARNING: ")]
    assert len(lines) == 1, err
    assert lines[0].startswith("notify-async: error: ")
    assert "Traceback" not in err
    return lines[0]


# -- keys list -------------------------------------------------------------------------------------


async def test_keys_list_prints_a_table_of_prefixes(
    env: LocalNotifyServer, capsys: pytest.CaptureFixture[str]
) -> None:
    env.add_key("CI")

    assert await cli("keys", "list") == 0

    out, err = capsys.readouterr()
    header, *rows = out.splitlines()
    assert header.split() == [
        "ID",
        "NAME",
        "PREFIX",
        "ACTIVE",
        "CREATED",
        "(UTC)",
        "UPDATED",
        "(UTC)",
    ]
    assert len(rows) == 2
    for row, key in zip(rows, env.keys, strict=True):
        assert row.startswith(key.id)
        assert key.prefix in row
        assert f"{key.created_at:%Y-%m-%d %H:%M}" in row
        assert key.secret not in out
    assert "CI" in rows[1]
    assert err == ""


async def test_keys_list_json_is_machine_readable(
    env: LocalNotifyServer, capsys: pytest.CaptureFixture[str]
) -> None:
    assert await cli("keys", "list", "--json") == 0

    out, err = capsys.readouterr()
    [row] = json.loads(out)
    [key] = env.keys
    assert row == {
        "id": key.id,
        "name": key.name,
        "prefix": key.prefix,
        "active": True,
        "created_at": key.created_at.isoformat(),
        "updated_at": key.updated_at.isoformat(),
    }
    assert err == ""


async def test_keys_list_reads_the_key_from_key_file(
    env: LocalNotifyServer,
    key_file: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.delenv("NOTIFY_API_KEY")

    assert (
        await cli("keys", "list", "--json", "--base-url", env.base_url, "--key-file", str(key_file))
        == 0
    )

    assert [row["prefix"] for row in json.loads(capsys.readouterr().out)] == [env.keys[0].prefix]


async def test_no_key_anywhere_exits_3_with_one_line(
    env: LocalNotifyServer, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("NOTIFY_API_KEY")

    assert await cli("keys", "list") == 3

    out, err = capsys.readouterr()
    assert out == ""
    assert "NOTIFY_API_KEY" in one_error_line(err)
    assert "--key-file" in err
    assert env.request_counts["GET /api_keys"] == 0


async def test_missing_key_file_exits_3(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "nope.key"

    assert await cli("keys", "list", "--key-file", str(missing)) == 3

    assert "does not exist" in one_error_line(capsys.readouterr().err)


# -- keys rotate -----------------------------------------------------------------------------------


async def test_keys_rotate_stores_verifies_and_prints_the_prefix_only(
    env: LocalNotifyServer, key_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    old = env.api_key

    assert await cli("keys", "rotate", "--key-file", str(key_file)) == 0

    new = env.api_key
    assert new != old
    out, err = capsys.readouterr()
    assert out == redact(new) + "\n"  # stdout: the prefix, for a script to log
    assert new not in out
    assert new not in err
    assert "rotated key" in err
    assert str(key_file) in err
    assert read_key(key_file) == new
    assert file_mode(key_file) == 0o600
    assert env.request_counts["POST /api_keys/regenerate"] == 1
    # The verification is one call made with the new key, after the rotation.
    assert env.auth_failures == 0
    assert env.request_counts["GET /api_keys"] == 2  # find our key's id, then verify


async def test_keys_rotate_twice_in_a_row_like_a_cron_job(
    env: LocalNotifyServer, key_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert await cli("keys", "rotate", "--key-file", str(key_file)) == 0
    first = env.api_key
    assert await cli("keys", "rotate", "--key-file", str(key_file)) == 0

    assert env.api_key != first
    assert read_key(key_file) == env.api_key
    assert capsys.readouterr().out.splitlines() == [redact(first), redact(env.api_key)]


async def test_keys_rotate_requires_key_file(
    env: LocalNotifyServer, capsys: pytest.CaptureFixture[str]
) -> None:
    assert await cli("keys", "rotate") == 2

    assert "--key-file" in capsys.readouterr().err
    assert env.request_counts["POST /api_keys/regenerate"] == 0


async def test_keys_rotate_refuses_before_rotating_when_the_folder_is_not_writable(
    env: LocalNotifyServer,
    key_file: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # Tests run as root, where chmod cannot make a folder unwritable; fail the probe instead.
    def refuse(*args: object, **kwargs: object) -> tuple[int, str]:
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr("tempfile.mkstemp", refuse)
    old = env.api_key

    assert await cli("keys", "rotate", "--key-file", str(key_file)) == 3

    assert "nothing was rotated" in one_error_line(capsys.readouterr().err)
    assert env.request_counts["POST /api_keys/regenerate"] == 0
    assert env.api_key == old
    assert read_key(key_file) == old


async def test_keys_rotate_exits_10_when_the_new_key_cannot_be_stored(
    env: LocalNotifyServer,
    key_file: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    def disk_full(path: object, text: str) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("notify_async._credentials.write_atomically", disk_full)
    old = env.api_key

    assert await cli("keys", "rotate", "--key-file", str(key_file)) == 10

    out, err = capsys.readouterr()
    line = one_error_line(err)
    assert "dashboard" in line
    assert redact(env.api_key) in line
    assert env.api_key not in out + err
    assert env.api_key != old
    assert read_key(key_file) == old


async def test_keys_rotate_after_a_lost_reply_exits_8_and_is_not_retried(
    env: LocalNotifyServer, key_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    env.inject("POST /api_keys/regenerate", Fault.drop_after())

    with instant_retries():
        assert await cli("keys", "rotate", "--key-file", str(key_file)) == 8

    assert "outcome unknown" in one_error_line(capsys.readouterr().err)
    assert env.request_counts["POST /api_keys/regenerate"] == 1


async def test_keys_rotate_succeeds_with_a_warning_when_only_the_check_failed(
    env: LocalNotifyServer, key_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # The first listing (finding our key's id) passes; the verification after the
    # rotation meets a 500 on every attempt. The rotation happened and is stored: exit 0,
    # so that cron does not rotate again, and say what the check found.
    env.inject("GET /api_keys", Fault.delay(0), *[Fault.status(500)] * 3)

    with instant_retries():
        assert await cli("keys", "rotate", "--key-file", str(key_file)) == 0

    out, err = capsys.readouterr()
    assert out.strip() == redact(env.api_key)
    assert "the check with the new key failed" in err
    assert "HTTP 500" in err
    assert read_key(key_file) == env.api_key
    assert env.api_key not in err


async def test_keys_rotate_with_a_rejected_key_exits_4(
    env: LocalNotifyServer,
    key_file: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    env.rotate()  # an operator rotated, and nobody published the key to this file
    monkeypatch.setattr(notify_async._cli, "NotifyClient", _no_grace_client)
    old = read_key(key_file)

    assert await cli("keys", "rotate", "--key-file", str(key_file)) == 4

    one_error_line(capsys.readouterr().err)
    assert read_key(key_file) == old
    assert env.request_counts["POST /api_keys/regenerate"] == 0


def _no_grace_client(**kwargs: object) -> NotifyClient:
    # The key file keeps the default 3 s grace window; a test need not wait it out.
    return NotifyClient(**kwargs, rotation_grace=0)  # type: ignore[arg-type]


# -- send ------------------------------------------------------------------------------------------


async def test_send_prints_the_server_message(
    env: LocalNotifyServer, capsys: pytest.CaptureFixture[str]
) -> None:
    code = await cli(
        "send", "--to", "ada@example.com", "--subject", "Hi", "--message", "Hello", "--name", "Ada"
    )

    assert code == 0
    assert capsys.readouterr() == ("Email sent successfully\n", "")
    [email] = env.emails
    assert (email.to, email.subject, email.message, email.name) == (
        "ada@example.com",
        "Hi",
        "Hello",
        "Ada",
    )


async def test_send_reads_the_message_from_stdin(
    env: LocalNotifyServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sys, "stdin", io.StringIO("line one\nline two\n"))

    assert await cli("send", "--to", "ada@example.com", "--subject", "Log", "--message", "-") == 0

    assert [e.message for e in env.emails] == ["line one\nline two\n"]


@pytest.mark.parametrize(
    ("fault", "code", "words"),
    [
        (Fault.status(400, body={"success": False, "message": "bad to"}), 6, "HTTP 400: bad to"),
        (Fault.status(429, headers={"Retry-After": "3600"}), 5, "HTTP 429"),
        (Fault.status(500), 8, "outcome unknown"),
        (Fault.drop_after(), 8, "outcome unknown"),
        (
            # The send reached Notify and no usable answer came back.
            Fault.status(200, body="<html>proxy</html>", headers={"Content-Type": "text/html"}),
            8,
            "HTML",
        ),
        (Fault.status(403), 6, "HTTP 403"),
    ],
    ids=["400", "429-too-long", "500", "lost-reply", "html-200", "403"],
)
async def test_send_failures_exit_with_their_class_code(
    env: LocalNotifyServer,
    capsys: pytest.CaptureFixture[str],
    fault: Fault,
    code: int,
    words: str,
) -> None:
    env.inject("POST /send-email", fault)

    with instant_retries():
        assert (
            await cli("send", "--to", "a@example.com", "--subject", "s", "--message", "m") == code
        )

    out, err = capsys.readouterr()
    assert out == ""
    assert words in one_error_line(err)
    assert env.request_counts["POST /send-email"] == 1  # none of these is retried


async def test_send_after_a_503_is_retried_and_succeeds(
    env: LocalNotifyServer, capsys: pytest.CaptureFixture[str]
) -> None:
    env.inject("POST /send-email", Fault.status(503, headers={"Retry-After": "1"}))

    with instant_retries() as waits:
        assert await cli("send", "--to", "a@example.com", "--subject", "s", "--message", "m") == 0

    assert waits == [1.0]
    out, err = capsys.readouterr()
    assert out == "Email sent successfully\n"
    assert "WARNING" in err  # the retry is logged on stderr, not stdout
    assert "Retrying POST /send-email" in err
    assert len(env.emails) == 1


async def test_a_rejected_key_exits_4(
    env: LocalNotifyServer, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("NOTIFY_API_KEY", "nk_revoked_key_000000000000000000000")

    assert await cli("send", "--to", "a@example.com", "--subject", "s", "--message", "m") == 4

    assert "HTTP 401" in one_error_line(capsys.readouterr().err)
    assert env.emails == []


async def test_a_closed_port_exits_7(
    env: LocalNotifyServer, capsys: pytest.CaptureFixture[str]
) -> None:
    async with LocalNotifyServer() as gone:
        base_url = gone.base_url
    # `gone` is closed: nothing listens on its port any more.

    with instant_retries():
        code = await cli(
            "send",
            "--base-url",
            base_url,
            "--to",
            "a@example.com",
            "--subject",
            "s",
            "--message",
            "m",
        )

    assert code == 7
    assert "could not connect" in one_error_line(capsys.readouterr().err)


@pytest.mark.parametrize(
    "argv",
    [
        ["send", "--to", " ", "--subject", "s", "--message", "m"],
        [
            "send",
            "--base-url",
            "http://example.com/api",
            "--to",
            "a@b.c",
            "--subject",
            "s",
            "--message",
            "m",
        ],
    ],
    ids=["blank-to", "cleartext-base-url"],
)
async def test_bad_arguments_exit_2(
    env: LocalNotifyServer, capsys: pytest.CaptureFixture[str], argv: list[str]
) -> None:
    assert await cli(*argv) == 2

    one_error_line(capsys.readouterr().err)
    assert env.request_counts["POST /send-email"] == 0


async def test_debug_adds_the_traceback_and_keeps_the_exit_code(
    env: LocalNotifyServer, capsys: pytest.CaptureFixture[str]
) -> None:
    env.inject("POST /send-email", Fault.status(400))

    assert await cli("send", "--debug", "--to", "a@b.c", "--subject", "s", "--message", "m") == 6

    err = capsys.readouterr().err
    assert "Traceback (most recent call last)" in err
    assert "BadRequestError" in err
    assert err.rstrip().splitlines()[-1].startswith("notify-async: error: ")


async def test_an_unexpected_error_is_one_line_without_debug(
    env: LocalNotifyServer, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    async def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("boom")

    monkeypatch.setattr("notify_async._emails.Emails.send", broken)

    assert await cli("send", "--to", "a@b.c", "--subject", "s", "--message", "m") == 1

    line = one_error_line(capsys.readouterr().err)
    assert "unexpected RuntimeError: boom" in line
    assert "--debug" in line


# -- argument parsing, interrupts, entry points ----------------------------------------------------


def test_usage_errors_exit_2_and_help_exits_0(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 2
    assert "usage: notify-async" in capsys.readouterr().err
    assert main(["send", "--to", "a@b.c"]) == 2
    assert "required" in capsys.readouterr().err
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    for command in ("keys", "send", "serve", "demo"):
        assert command in out


def test_debug_is_accepted_before_or_after_the_command(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[bool] = []

    async def record(args: object) -> int:
        seen.append(getattr(args, "debug", None) is True)
        return 0

    monkeypatch.setattr(notify_async._cli, "_keys_list", record)

    assert main(["--debug", "keys", "list"]) == 0
    assert main(["keys", "list", "--debug"]) == 0
    assert main(["keys", "list"]) == 0
    assert seen == [True, True, False]


def test_ctrl_c_exits_130(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    async def interrupted(args: object) -> int:
        raise KeyboardInterrupt

    monkeypatch.setattr(notify_async._cli, "_send", interrupted)

    assert main(["send", "--to", "a@b.c", "--subject", "s", "--message", "m"]) == 130
    assert capsys.readouterr().err == "notify-async: interrupted\n"


def test_exit_codes_put_each_subclass_before_its_base() -> None:
    kinds = list(EXIT_CODES)
    for position, kind in enumerate(kinds):
        for base in kinds[:position]:
            assert not issubclass(kind, base), f"{kind.__name__} is shadowed by {base.__name__}"


def test_the_console_script_is_this_main() -> None:
    [script] = entry_points(group="console_scripts", name="notify-async")

    assert script.load() is main


# -- serve -----------------------------------------------------------------------------------------


async def test_serve_on_a_port_in_use_exits_1_with_one_line(
    notify_server: LocalNotifyServer, capsys: pytest.CaptureFixture[str]
) -> None:
    assert await cli("serve", "--port", str(notify_server.port)) == 1

    assert "address already in use" in one_error_line(capsys.readouterr().err)


# -- serve, and the CLI as a real process ----------------------------------------------------------


@pytest.fixture
async def served(
    tmp_path: Path,
) -> AsyncIterator[tuple[asyncio.subprocess.Process, dict[str, str]]]:
    """``python -m notify_async serve`` in its own process, and the variables it printed."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "notify_async",
        "serve",
        "--port",
        "0",
        "--keys",
        "2",
        "--key-file",
        str(tmp_path / "served.key"),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    assert process.stdout is not None
    try:
        lines = [await asyncio.wait_for(process.stdout.readline(), 20) for _ in range(2)]
        printed = dict(line.decode().strip().split("=", 1) for line in lines)
        yield process, printed
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


async def test_serve_prints_a_base_url_and_a_ready_key_and_stops_on_sigterm(
    served: tuple[asyncio.subprocess.Process, dict[str, str]], tmp_path: Path
) -> None:
    process, printed = served
    assert set(printed) == {"NOTIFY_BASE_URL", "NOTIFY_API_KEY"}
    assert printed["NOTIFY_BASE_URL"].startswith("http://127.0.0.1:")
    assert read_key(tmp_path / "served.key") == printed["NOTIFY_API_KEY"]

    async with NotifyClient(
        printed["NOTIFY_API_KEY"], base_url=printed["NOTIFY_BASE_URL"]
    ) as client:
        assert len(await client.api_keys.list()) == 2
        await client.emails.send(to="ada@example.com", subject="Hi", message="Hello")

    process.terminate()
    _, err = await asyncio.wait_for(process.communicate(), 20)
    assert process.returncode == 0
    assert b"press Ctrl+C to stop" in err
    assert b"Traceback" not in err


async def test_the_cli_as_a_real_process_against_serve(
    served: tuple[asyncio.subprocess.Process, dict[str, str]], tmp_path: Path
) -> None:
    _, printed = served
    environ = {k: v for k, v in os.environ.items() if not k.startswith("NOTIFY_")} | printed
    key_file = tmp_path / "served.key"

    async def run(*argv: str) -> tuple[int, str, str]:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "notify_async",
            *argv,
            env=environ,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, err = await asyncio.wait_for(process.communicate(), 60)
        assert process.returncode is not None
        return process.returncode, out.decode(), err.decode()

    code, out, err = await run("keys", "list", "--json")
    assert (code, err) == (0, "")
    assert len(json.loads(out)) == 2

    code, out, err = await run("keys", "rotate", "--key-file", str(key_file))
    assert code == 0
    new_key = read_key(key_file)
    assert out == redact(new_key) + "\n"
    assert new_key not in err

    code, out, err = await run("send", "--to", "a@example.com", "--subject", "s", "--message", "m")
    assert code == 4  # the environment still holds the key that was just rotated away
    assert err.count("\n") == 1
    assert "Traceback" not in err
