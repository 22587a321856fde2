"""The other process of the rotation storm: it rotates the key when told to.

``python -m benchmarks._rotator MODE BASE_URL CONTROL_URL KEY_FILE``. It gets ready, prints
``ready``, waits for one line on stdin, rotates, and prints one JSON line with the time
the rotation took. Modes:

* ``operator``: ``POST /_control/rotate``. The server regenerates the key and rewrites the
  key file atomically in the same step, as a deploy pipeline that publishes a new secret.
* ``worker``: a ``NotifyClient`` on the same key file calls ``api_keys.rotate()``:
  regenerate through the API (the old key dies at once), adopt the new key, store it in
  the file atomically, check it with one list. There is a short window between the old
  key dying and the file holding the new one.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time

from notify_async import FileKeyProvider, NotifyClient
from notify_async.testing import ControlClient


async def _main(mode: str, base_url: str, control_url: str, key_file: str) -> None:
    loop = asyncio.get_running_loop()
    async with (
        ControlClient(control_url) as control,
        NotifyClient(credentials=FileKeyProvider(key_file), base_url=base_url) as client,
    ):
        # Learn our key's id now, so that the rotation itself is a regenerate and a store.
        await client.api_keys.list()
        await control.state(include_emails=False)
        print("ready", flush=True)
        await loop.run_in_executor(None, sys.stdin.readline)
        started = time.perf_counter()
        if mode == "operator":
            await control.rotate()
        else:
            await client.api_keys.rotate()
        took = time.perf_counter() - started
    print(json.dumps({"mode": mode, "rotation_ms": took * 1e3}), flush=True)


if __name__ == "__main__":
    mode, base_url, control_url, key_file = sys.argv[1:5]
    asyncio.run(_main(mode, base_url, control_url, key_file))
