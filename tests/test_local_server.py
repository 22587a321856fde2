"""The local Notify server, over real HTTP with a plain aiohttp client."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import re
import signal
import socket
import stat
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from support import free_port

import notify_async.testing
from notify_async._files import write_atomically
from notify_async.testing import ROUTES, AcceptedEmail, ControlClient, Fault, LocalNotifyServer

SEND = "POST /send-email"
TEMPLATE = "POST /send-email-from-template"
LIST = "GET /api_keys"
REGENERATE = "POST /api_keys/regenerate"
EMAIL = {"to": "ada@example.com", "subject": "Hi", "message": "Hello"}
# The subprocess must import this checkout, wherever pytest was started from.
PROJECT_ROOT = Path(notify_async.testing.__file__).resolve().parents[2]
ISO_Z = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{3})?Z$")


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


@pytest.fixture
async def server() -> AsyncIterator[LocalNotifyServer]:
    async with LocalNotifyServer(keys=2) as server:
        yield server


async def call(
    http: aiohttp.ClientSession,
    server: LocalNotifyServer,
    route: str,
    body: Any = None,
    *,
    key: str | None = None,
    raw: bytes | None = None,
) -> tuple[int, Any]:
    """Send one request to a route and return the status and the decoded JSON body."""
    method, path = route.split(" ", 1)
    headers = {"x-api-key": server.api_key if key is None else key}
    kwargs: dict[str, Any] = {"data": raw} if raw is not None else {"json": body}
    async with http.request(method, server.base_url + path, headers=headers, **kwargs) as resp:
        return resp.status, await resp.json(content_type=None)


# -- endpoints -------------------------------------------------------------------------------


async def test_list_keys_shows_every_key_with_a_prefix_only(
    http: aiohttp.ClientSession, server: LocalNotifyServer
) -> None:
    status, body = await call(http, server, LIST)

    assert status == 200
    assert body["success"] is True
    assert [k["id"] for k in body["data"]] == [k.id for k in server.keys]
    for listed, stored in zip(body["data"], server.keys, strict=True):
        assert set(listed) == {"id", "name", "createdAt", "updatedAt", "active", "prefix"}
        assert listed["prefix"] == stored.secret[:8] + "..."
        assert listed["active"] is True
        assert ISO_Z.match(listed["createdAt"])
        assert ISO_Z.match(listed["updatedAt"])
    assert server.api_key not in json.dumps(body)


async def test_keys_look_like_notify_keys(server: LocalNotifyServer) -> None:
    assert re.fullmatch(r"nk_[A-Za-z0-9_-]{32}", server.api_key)
    assert server.key_id_of(server.api_key) == server.primary_key_id == server.keys[0].id
    assert server.base_url == f"http://127.0.0.1:{server.port}/api/public/v1"


@pytest.mark.parametrize("route", ROUTES)
@pytest.mark.parametrize("key", ["", "nk_not-a-key"])
async def test_every_route_needs_an_active_key(
    http: aiohttp.ClientSession, server: LocalNotifyServer, route: str, key: str
) -> None:
    status, body = await call(http, server, route, EMAIL, key=key)

    assert status == 401
    assert body["success"] is False
    assert body["message"].startswith("Invalid API key.")
    assert server.request_counts[route] == 1
    assert server.auth_failures == 1
    assert server.auth_failures_by_route[route] == 1
    assert server.emails == []


async def test_a_missing_header_is_401(
    http: aiohttp.ClientSession, server: LocalNotifyServer
) -> None:
    async with http.get(server.base_url + "/api_keys") as resp:
        assert resp.status == 401


async def test_a_deactivated_key_is_refused(
    http: aiohttp.ClientSession, server: LocalNotifyServer
) -> None:
    server.deactivate(server.primary_key_id)

    assert (await call(http, server, LIST))[0] == 401
    assert server.keys[0].active is False


async def test_regenerate_invalidates_the_old_key_at_once(
    http: aiohttp.ClientSession, server: LocalNotifyServer
) -> None:
    old_key, key_id = server.api_key, server.primary_key_id
    before = server.keys[0]

    status, body = await call(http, server, REGENERATE, {"keyId": key_id})

    assert status == 200
    assert body == {
        "success": True,
        "message": "API key regenerated successfully. Make sure to update your x-api-key header.",
        "data": {"id": key_id, "api_key": server.api_key},
    }
    new_key = body["data"]["api_key"]
    assert new_key != old_key
    assert (await call(http, server, LIST, key=old_key))[0] == 401
    status, listing = await call(http, server, LIST, key=new_key)
    assert status == 200
    listed = listing["data"][0]
    assert listed["prefix"] == new_key[:8] + "..."
    assert listed["createdAt"] == body_time(before.created_at)
    assert listed["updatedAt"] > body_time(before.updated_at)
    assert server.key_id_of(new_key) == key_id
    with pytest.raises(KeyError):
        server.key_id_of(old_key)


def body_time(moment: Any) -> str:
    return str(moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z")


async def test_one_key_can_regenerate_another(
    http: aiohttp.ClientSession, server: LocalNotifyServer
) -> None:
    other_id = server.keys[1].id
    other_old = server.keys[1].secret

    status, body = await call(http, server, REGENERATE, {"keyId": other_id})

    assert status == 200
    assert server.keys[1].secret == body["data"]["api_key"] != other_old
    assert (await call(http, server, LIST))[0] == 200  # the caller's key is untouched


@pytest.mark.parametrize(
    ("payload", "status"),
    [
        ({"keyId": "123e4567-e89b-12d3-a456-426614174000"}, 404),
        ({}, 400),
        ({"keyId": 7}, 400),
        ([], 400),
    ],
)
async def test_regenerate_rejects_bad_ids(
    http: aiohttp.ClientSession, server: LocalNotifyServer, payload: Any, status: int
) -> None:
    keys_before = server.keys

    got, body = await call(http, server, REGENERATE, payload)

    assert got == status
    assert body["success"] is False
    assert body["message"]
    assert server.keys == keys_before


async def test_send_email_records_what_it_accepted(
    http: aiohttp.ClientSession, server: LocalNotifyServer
) -> None:
    second_key = server.keys[1].secret

    assert await call(http, server, SEND, EMAIL) == (
        200,
        {"success": True, "message": "Email sent successfully"},
    )
    assert (await call(http, server, SEND, {**EMAIL, "name": "Ada"}, key=second_key))[0] == 200

    assert server.emails == [
        AcceptedEmail(
            to="ada@example.com", subject="Hi", message="Hello", key_id=server.primary_key_id
        ),
        AcceptedEmail(
            to="ada@example.com",
            subject="Hi",
            message="Hello",
            name="Ada",
            key_id=server.keys[1].id,
        ),
    ]


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        ({"message": "Hello"}, "Missing required fields: to, subject"),
        ({"to": "a@example.com", "subject": 3, "message": "m"}, "Missing required fields: subject"),
        ({**EMAIL, "name": 5}, "Invalid field: name must be a string"),
    ],
)
async def test_send_email_rejects_missing_fields(
    http: aiohttp.ClientSession, server: LocalNotifyServer, payload: Any, message: str
) -> None:
    assert await call(http, server, SEND, payload) == (400, {"success": False, "message": message})
    assert server.emails == []


@pytest.mark.parametrize("route", [SEND, TEMPLATE, REGENERATE])
@pytest.mark.parametrize("raw", [b"{not json", b"\xff\xfe", b""])
async def test_a_body_that_is_not_json_is_400(
    http: aiohttp.ClientSession, server: LocalNotifyServer, route: str, raw: bytes
) -> None:
    status, body = await call(http, server, route, raw=raw)

    assert status == 400
    assert body == {"success": False, "message": "Invalid JSON body"}
    assert server.emails == []


async def test_send_from_template_records_template_fields(
    http: aiohttp.ClientSession, server: LocalNotifyServer
) -> None:
    payload = {
        "templateId": "tpl_1",
        "to": "ada@example.com",
        "from": "Notify <no-reply@example.com>",
        "variables": {"name": "Ada"},
    }

    status, body = await call(http, server, TEMPLATE, payload)

    assert (status, body["success"]) == (200, True)
    (email,) = server.emails
    assert email.template_id == "tpl_1"
    assert email.to == "ada@example.com"
    assert email.from_ == "Notify <no-reply@example.com>"
    assert email.variables == {"name": "Ada"}
    assert email.subject is None
    assert email.message is None
    assert hash(email)  # still hashable despite the mapping


@pytest.mark.parametrize(
    ("payload", "status_message"),
    [
        ({"to": "ada@example.com"}, "Missing required fields: templateId"),
        ({}, "Missing required fields: templateId, to"),
        (
            {"templateId": "t", "to": "a@example.com", "variables": {"n": 1}},
            "Invalid field: variables must be an object of strings",
        ),
        (
            {"templateId": "t", "to": "a@example.com", "from": 1},
            "Invalid field: from must be a string",
        ),
    ],
)
async def test_send_from_template_rejects_bad_bodies(
    http: aiohttp.ClientSession, server: LocalNotifyServer, payload: Any, status_message: str
) -> None:
    assert await call(http, server, TEMPLATE, payload) == (
        400,
        {"success": False, "message": status_message},
    )
    assert server.emails == []


# -- faults ------------------------------------------------------------------------------------


async def test_status_fault_answers_without_auth_or_side_effects(
    http: aiohttp.ClientSession, server: LocalNotifyServer
) -> None:
    server.inject(SEND, Fault.status(503))

    status, body = await call(http, server, SEND, EMAIL, key="nk_wrong")

    assert status == 503
    assert body == {"success": False, "message": "Service Unavailable"}
    assert server.emails == []
    assert server.auth_failures == 0  # faults come before the key check
    assert server.request_counts[SEND] == 1


async def test_status_fault_sends_the_given_headers_and_body(
    http: aiohttp.ClientSession, server: LocalNotifyServer
) -> None:
    html = "<html><body>502 Bad Gateway</body></html>"
    server.inject(
        SEND,
        Fault.status(429, headers={"Retry-After": "7"}, body={"error": "slow down"}),
        Fault.status(502, headers={"Content-Type": "text/html"}, body=html),
        Fault.status(500, body=b""),
    )
    url = server.base_url + "/send-email"
    headers = {"x-api-key": server.api_key}

    async with http.post(url, json=EMAIL, headers=headers) as resp:
        assert resp.status == 429
        assert resp.headers["Retry-After"] == "7"
        assert await resp.json() == {"error": "slow down"}
    async with http.post(url, json=EMAIL, headers=headers) as resp:
        assert resp.status == 502
        assert resp.content_type == "text/html"
        assert await resp.text() == html
    async with http.post(url, json=EMAIL, headers=headers) as resp:
        assert resp.status == 500
        assert await resp.read() == b""
    async with http.post(url, json=EMAIL, headers=headers) as resp:
        assert resp.status == 200

    assert len(server.emails) == 1
    assert server.request_counts[SEND] == 4


async def test_faults_apply_in_order_to_one_request_each_on_their_route_only(
    http: aiohttp.ClientSession, server: LocalNotifyServer
) -> None:
    server.inject(LIST, Fault.status(500), Fault.status(502))

    assert (await call(http, server, SEND, EMAIL))[0] == 200
    assert [(await call(http, server, LIST))[0] for _ in range(3)] == [500, 502, 200]
    assert server.pending_faults(LIST) == 0


async def test_injected_401_counts_as_an_auth_failure(
    http: aiohttp.ClientSession, server: LocalNotifyServer
) -> None:
    server.inject(LIST, Fault.status(401))

    assert (await call(http, server, LIST))[0] == 401
    assert server.auth_failures == 1


async def test_delay_fault_slows_the_answer(
    http: aiohttp.ClientSession, server: LocalNotifyServer
) -> None:
    server.inject(SEND, Fault.delay(0.3))

    started = time.monotonic()
    assert (await call(http, server, SEND, EMAIL))[0] == 200

    assert time.monotonic() - started >= 0.3
    assert len(server.emails) == 1


async def test_delayed_request_is_still_handled_after_the_client_gave_up(
    http: aiohttp.ClientSession, server: LocalNotifyServer
) -> None:
    server.inject(SEND, Fault.delay(0.3))

    with pytest.raises(asyncio.TimeoutError):
        async with http.post(
            server.base_url + "/send-email",
            json=EMAIL,
            headers={"x-api-key": server.api_key},
            timeout=aiohttp.ClientTimeout(total=0.05),
        ):
            pass
    assert server.emails == []
    await asyncio.sleep(0.5)

    assert len(server.emails) == 1  # the outcome a timed-out client cannot know


async def test_close_cuts_pending_delays_short(http: aiohttp.ClientSession) -> None:
    server = LocalNotifyServer()
    await server.start()
    server.inject(SEND, Fault.delay(30))
    request = asyncio.create_task(call(http, server, SEND, EMAIL))
    await asyncio.sleep(0.1)

    started = time.monotonic()
    await server.close()

    assert time.monotonic() - started < 5
    await asyncio.wait([request])
    request.exception()  # answered or cut off: either way, retrieved


async def test_drop_before_disconnects_and_changes_nothing(
    http: aiohttp.ClientSession, server: LocalNotifyServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    server.inject(SEND, Fault.drop_before())

    with pytest.raises(aiohttp.ServerDisconnectedError):
        await call(http, server, SEND, EMAIL)

    assert server.emails == []
    assert server.request_counts[SEND] == 1
    assert (await call(http, server, SEND, EMAIL))[0] == 200  # still healthy
    assert len(server.emails) == 1
    assert caplog.records == []


async def test_drop_after_records_the_email_but_the_client_never_hears(
    http: aiohttp.ClientSession, server: LocalNotifyServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    server.inject(TEMPLATE, Fault.drop_after())

    with pytest.raises(aiohttp.ServerDisconnectedError):
        await call(http, server, TEMPLATE, {"templateId": "t", "to": "ada@example.com"})

    assert [email.template_id for email in server.emails] == ["t"]
    assert (await call(http, server, SEND, EMAIL))[0] == 200
    assert caplog.records == []


async def test_drop_after_regenerate_loses_the_new_key(
    http: aiohttp.ClientSession, server: LocalNotifyServer
) -> None:
    old_key = server.api_key
    server.inject(REGENERATE, Fault.drop_after())

    with pytest.raises(aiohttp.ServerDisconnectedError):
        await call(http, server, REGENERATE, {"keyId": server.primary_key_id})

    assert server.api_key != old_key
    assert (await call(http, server, LIST, key=old_key))[0] == 401


async def test_aiohttp_retries_a_dropped_get_once_by_itself(
    http: aiohttp.ClientSession, server: LocalNotifyServer
) -> None:
    # aiohttp resends an idempotent request once after a disconnect, so one dropped GET
    # goes unnoticed by a plain ClientSession and it takes two to make it fail.
    server.inject(LIST, Fault.drop_before())
    assert (await call(http, server, LIST))[0] == 200
    assert server.request_counts[LIST] == 2

    server.inject(LIST, Fault.drop_before(), Fault.drop_after())
    with pytest.raises(aiohttp.ServerDisconnectedError):
        await call(http, server, LIST)
    assert server.request_counts[LIST] == 4


def test_inject_rejects_unknown_routes(server: LocalNotifyServer) -> None:
    with pytest.raises(ValueError, match="unknown route"):
        server.inject("POST /send_email", Fault.status(500))


async def test_clear_faults_forgets_queued_faults(
    http: aiohttp.ClientSession, server: LocalNotifyServer
) -> None:
    server.inject(SEND, Fault.status(500), Fault.drop_before())
    server.clear_faults()

    assert (await call(http, server, SEND, EMAIL))[0] == 200


@pytest.mark.parametrize(
    ("make", "error"),
    [
        (lambda: Fault.status(99), "between 200 and 599"),
        (lambda: Fault.status(204, body="x"), "no body"),
        (lambda: Fault.delay(-1), "negative"),
    ],
)
def test_faults_reject_impossible_values(make: Any, error: str) -> None:
    with pytest.raises(ValueError, match=error):
        make()


@pytest.mark.parametrize(
    "fault",
    [
        Fault.status(503, headers={"Retry-After": "1"}),
        Fault.status(502, body="<html></html>", headers={"Content-Type": "text/html"}),
        Fault.status(500, body=b"\xff\x00"),
        Fault.status(204),
        Fault.delay(1.5),
        Fault.drop_before(),
        Fault.drop_after(),
    ],
)
def test_faults_survive_the_control_api_encoding(fault: Fault) -> None:
    assert Fault.from_json(json.loads(json.dumps(fault.to_json()))) == fault


# -- counters, operator actions, key file ----------------------------------------------------


async def test_counts_include_401s_and_faults_and_reset(
    http: aiohttp.ClientSession, server: LocalNotifyServer
) -> None:
    server.inject(SEND, Fault.status(500))
    await call(http, server, SEND, EMAIL)
    await call(http, server, SEND, EMAIL, key="nk_wrong")
    await call(http, server, SEND, EMAIL)
    await call(http, server, LIST)

    assert server.request_counts == {SEND: 3, LIST: 1}
    assert server.auth_failures == 1

    server.reset_counters()

    assert server.request_counts[SEND] == 0
    assert server.auth_failures == 0
    assert len(server.emails) == 1  # emails are not counters


async def test_operator_rotation_invalidates_the_old_key(
    http: aiohttp.ClientSession, server: LocalNotifyServer
) -> None:
    old_key = server.api_key

    new_key = server.rotate()

    assert new_key == server.api_key != old_key
    assert (await call(http, server, LIST, key=old_key))[0] == 401
    assert (await call(http, server, LIST, key=new_key))[0] == 200
    second = server.keys[1]
    assert server.rotate(second.id) == server.keys[1].secret != second.secret
    with pytest.raises(KeyError):
        server.rotate("no-such-id")


async def test_add_key_creates_a_working_key(
    http: aiohttp.ClientSession, server: LocalNotifyServer
) -> None:
    key = server.add_key("CI")

    assert server.keys[-1].name == "CI"
    assert (await call(http, server, LIST, key=key))[1]["data"][-1]["name"] == "CI"


async def test_the_key_file_is_written_before_the_port_opens(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A second shell (or a test) that sees the port open reads the key file at once; the
    # examples' commands do exactly that. So at the moment the file is written, nothing
    # may be listening yet.
    port = free_port()
    refused_at_write: list[bool] = []

    def write_and_probe(path: Path, text: str) -> None:
        with socket.socket() as probe:
            refused_at_write.append(probe.connect_ex(("127.0.0.1", port)) != 0)
        write_atomically(path, text)

    monkeypatch.setattr("notify_async.testing._server.write_atomically", write_and_probe)
    key_file = tmp_path / "notify.key"
    async with LocalNotifyServer(port=port, key_file=key_file) as server:
        assert refused_at_write == [True]
        assert key_file.read_text().strip() == server.api_key


async def test_key_file_follows_operator_rotations(tmp_path: Path) -> None:
    key_file = tmp_path / "notify.key"
    async with LocalNotifyServer(key_file=key_file) as server:
        assert key_file.read_text().strip() == server.api_key
        assert stat.S_IMODE(key_file.stat().st_mode) == 0o600

        server.rotate()

        assert key_file.read_text().strip() == server.api_key
        assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert os.listdir(tmp_path) == ["notify.key"]  # no temporary file left behind


async def test_the_fixture_yields_a_running_server(
    http: aiohttp.ClientSession, notify_server: LocalNotifyServer
) -> None:
    assert (await call(http, notify_server, SEND, EMAIL))[0] == 200
    assert len(notify_server.emails) == 1


async def test_lifecycle_without_context_manager() -> None:
    server = LocalNotifyServer()
    with pytest.raises(RuntimeError):
        _ = server.base_url
    await server.start()
    try:
        with pytest.raises(RuntimeError):
            await server.start()
    finally:
        await server.close()
    await server.close()  # twice is fine


# -- control API and separate process ----------------------------------------------------------


async def test_control_client_drives_an_in_process_server(
    http: aiohttp.ClientSession, server: LocalNotifyServer
) -> None:
    async with ControlClient(server.control_url) as control:
        await control.inject(SEND, Fault.status(503, headers={"Retry-After": "0"}))
        assert server.pending_faults(SEND) == 1
        assert (await call(http, server, SEND, EMAIL))[0] == 503
        assert (await call(http, server, SEND, EMAIL))[0] == 200

        state = await control.state()
        assert state["request_counts"][SEND] == 2
        assert state["emails_count"] == 1
        assert state["emails"][0]["to"] == "ada@example.com"
        assert state["emails"][0]["key_id"] == server.primary_key_id
        assert [k["id"] for k in state["keys"]] == [k.id for k in server.keys]
        assert all(k.secret not in json.dumps(state["keys"]) for k in server.keys)

        new_key = await control.rotate()
        assert new_key == server.api_key
        second = await control.rotate(server.keys[1].id)
        assert second == server.keys[1].secret

        await control.reset()
        assert "emails" not in await control.state(include_emails=False)
        state = await control.state()
        assert state["emails_count"] == 0
        assert state["request_counts"][SEND] == 0
    assert server.request_counts[SEND] == 0  # control calls are not API requests


@pytest.mark.parametrize(
    ("path", "payload"),
    [
        ("/faults", {"route": "POST /nope", "faults": []}),
        ("/faults", {"route": SEND, "faults": [{"kind": "explode"}]}),
        ("/faults", {"route": SEND, "faults": [{"kind": "status", "code": "503"}]}),
        ("/faults", {"route": SEND}),
        ("/rotate", {"keyId": 3}),
    ],
)
async def test_control_api_rejects_bad_requests(
    http: aiohttp.ClientSession, server: LocalNotifyServer, path: str, payload: Any
) -> None:
    async with http.post(server.control_url + path, json=payload) as resp:
        assert resp.status == 400
    assert server.pending_faults(SEND) == 0


async def test_control_rotate_of_an_unknown_key_is_404(
    http: aiohttp.ClientSession, server: LocalNotifyServer
) -> None:
    async with http.post(server.control_url + "/rotate", json={"keyId": "nope"}) as resp:
        assert resp.status == 404


async def test_runs_as_a_separate_process(http: aiohttp.ClientSession, tmp_path: Path) -> None:
    key_file = tmp_path / "key"
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(PROJECT_ROOT), os.environ.get("PYTHONPATH", "")]),
    }
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-W",
        "error",
        "-m",
        "notify_async.testing",
        "--keys",
        "2",
        "--key-file",
        str(key_file),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=env,
    )
    try:
        assert process.stdout is not None
        ready = json.loads(await asyncio.wait_for(process.stdout.readline(), timeout=30))
        assert set(ready) == {"base_url", "api_key", "control_url"}
        assert key_file.read_text().strip() == ready["api_key"]
        assert stat.S_IMODE(key_file.stat().st_mode) == 0o600

        headers = {"x-api-key": ready["api_key"]}
        async with http.post(ready["base_url"] + "/send-email", json=EMAIL, headers=headers) as r:
            assert r.status == 200
        async with ControlClient(ready["control_url"]) as control:
            state = await control.state()
            assert state["emails_count"] == 1
            assert len(state["keys"]) == 2

            await control.inject(SEND, Fault.drop_before())
            with pytest.raises(aiohttp.ServerDisconnectedError):
                async with http.post(
                    ready["base_url"] + "/send-email", json=EMAIL, headers=headers
                ):
                    pass

            new_key = await control.rotate()
            assert key_file.read_text().strip() == new_key
            async with http.get(ready["base_url"] + "/api_keys", headers=headers) as r:
                assert r.status == 401
            async with http.get(
                ready["base_url"] + "/api_keys", headers={"x-api-key": new_key}
            ) as r:
                assert r.status == 200
            assert (await control.state())["request_counts"] == {
                LIST: 2,
                REGENERATE: 0,
                SEND: 2,
                TEMPLATE: 0,
            }
    finally:
        if process.returncode is None:
            process.send_signal(signal.SIGTERM)
        _, stderr = await asyncio.wait_for(process.communicate(), timeout=30)

    assert process.returncode == 0, stderr.decode()
    assert stderr == b""


async def test_the_key_file_is_written_durably(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The same write as FileKeyProvider's: fsync the file before the rename, then the folder.
    synced: list[int] = []
    real_fsync = os.fsync

    def fsync(fd: int) -> None:
        synced.append(fd)
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    key_file = tmp_path / "notify.key"
    async with LocalNotifyServer(key_file=key_file) as server:
        assert len(synced) == 2
        server.rotate()
        assert len(synced) == 4
        assert key_file.read_text() == server.api_key + "\n"
    assert os.listdir(tmp_path) == ["notify.key"]  # no temporary file left


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
async def test_the_separate_process_stops_cleanly_on_sigterm_and_sigint(
    signum: signal.Signals,
) -> None:
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(PROJECT_ROOT), os.environ.get("PYTHONPATH", "")]),
    }
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "notify_async.testing",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=env,
    )
    assert process.stdout is not None
    ready = json.loads(await asyncio.wait_for(process.stdout.readline(), timeout=30))
    assert ready["base_url"].startswith("http://127.0.0.1:")

    process.send_signal(signum)
    _, stderr = await asyncio.wait_for(process.communicate(), timeout=30)

    assert (process.returncode, stderr) == (0, b"")
