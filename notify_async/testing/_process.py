"""Run the local Notify server in a process of its own.

Benchmarks need it there so that the CPU they measure is the client's alone; fleet tests
need it there so that several worker processes can share one server.
"""

from __future__ import annotations

__all__ = ["ServerProcess"]

import asyncio
import json
import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType

from notify_async.testing._server import ControlClient


class ServerProcess:
    """``python -m notify_async.testing`` as a child process, for as long as a block runs.

    ::

        async with ServerProcess(keys=3, key_file=tmp_path / "key") as server:
            client = NotifyClient(server.api_key, base_url=server.base_url)
            state = await server.control.state()

    On exit the process gets SIGTERM; ``returncode`` and ``stderr`` tell how it ended.

    Args:
        keys: how many API keys the account starts with.
        key_file: where the server writes its primary key (mode 0600), and rewrites it
            whenever an operator rotation (``control.rotate()``) changes it.
        python_args: interpreter options for the child, e.g. ``("-W", "error")``.
        env: the child's environment (default: this process's).
        capture_stderr: keep what the child writes to stderr, for ``stderr``. Off by
            default: the pipe is read only at exit, so a chatty server could fill it.
    """

    def __init__(
        self,
        *,
        keys: int = 1,
        key_file: str | os.PathLike[str] | None = None,
        python_args: Sequence[str] = (),
        env: Mapping[str, str] | None = None,
        capture_stderr: bool = False,
    ) -> None:
        self._command = [sys.executable, *python_args, "-m", "notify_async.testing"]
        self._command += ["--port", "0", "--keys", str(keys)]
        if key_file is not None:
            self._command += ["--key-file", str(Path(key_file))]
        self._env = dict(env) if env is not None else None
        self._stderr = asyncio.subprocess.PIPE if capture_stderr else None
        self._process: asyncio.subprocess.Process | None = None
        self._control: ControlClient | None = None
        #: The API root, e.g. ``http://127.0.0.1:PORT/api/public/v1``.
        self.base_url = ""
        #: The primary key's value when the server started.
        self.api_key = ""
        #: The root of the control API (``/_control``).
        self.control_url = ""
        #: The exit code, once the process has ended.
        self.returncode: int | None = None
        #: What the process wrote to stderr, once it has ended (with ``capture_stderr``).
        self.stderr = b""

    @property
    def control(self) -> ControlClient:
        """A client of the control API: state, operator rotation, faults, reset."""
        if self._control is None:
            raise RuntimeError("the server process is not running; use `async with`")
        return self._control

    async def __aenter__(self) -> ServerProcess:
        self._process = await asyncio.create_subprocess_exec(
            *self._command,
            stdout=asyncio.subprocess.PIPE,
            stderr=self._stderr,
            env=self._env,
        )
        try:
            # stdout=PIPE above, so it is set; the assert only narrows the type.
            assert self._process.stdout is not None  # noqa: S101  # nosec B101
            line = await asyncio.wait_for(self._process.stdout.readline(), timeout=30)
            ready = json.loads(line)
        except BaseException:
            await self._stop()
            raise
        self.base_url = ready["base_url"]
        self.api_key = ready["api_key"]
        self.control_url = ready["control_url"]
        self._control = ControlClient(self.control_url)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._control is not None:
            await self._control.close()
            self._control = None
        await self._stop()

    async def _stop(self) -> None:
        process, self._process = self._process, None
        if process is None:
            return
        if process.returncode is None:
            process.terminate()
        try:
            _, stderr = await asyncio.wait_for(process.communicate(), timeout=10)
        except asyncio.TimeoutError:
            process.kill()
            _, stderr = await process.communicate()
        self.stderr = stderr or b""
        self.returncode = process.returncode
