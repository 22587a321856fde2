"""Start ``python -m notify_async.testing`` as a separate process and stop it again.

The server always runs in its own process, so ``time.process_time()`` in the benchmark
process counts the client's CPU only.
"""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from types import TracebackType

from notify_async.testing import ControlClient


class ServerProcess:
    """``async with ServerProcess(keys=3) as server:`` gives its URLs, key and a control client."""

    def __init__(self, *, keys: int = 3, key_file: Path | None = None) -> None:
        self._args = ["--port", "0", "--keys", str(keys)]
        if key_file is not None:
            self._args += ["--key-file", str(key_file)]
        self._process: asyncio.subprocess.Process | None = None
        self.base_url = ""
        self.api_key = ""
        self.control_url = ""
        self.control: ControlClient | None = None

    async def __aenter__(self) -> ServerProcess:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "notify_async.testing",
            *self._args,
            stdout=asyncio.subprocess.PIPE,
        )
        self._process = process
        assert process.stdout is not None
        try:
            line = await asyncio.wait_for(process.stdout.readline(), timeout=30)
            ready = json.loads(line)
        except BaseException:
            await self._stop()
            raise
        self.base_url = ready["base_url"]
        self.api_key = ready["api_key"]
        self.control_url = ready["control_url"]
        self.control = ControlClient(self.control_url)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self.control is not None:
            await self.control.close()
        await self._stop()

    async def _stop(self) -> None:
        process, self._process = self._process, None
        if process is None or process.returncode is not None:
            return
        process.terminate()
        try:
            await asyncio.wait_for(process.wait(), timeout=10)
        except asyncio.TimeoutError:
            process.kill()
            await process.wait()
