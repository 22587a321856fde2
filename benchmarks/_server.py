"""The local Notify server in a process of its own (``notify_async.testing.ServerProcess``).

The server always runs in its own process, so ``time.process_time()`` in the benchmark
process counts the client's CPU only.
"""

from __future__ import annotations

from notify_async.testing import ServerProcess

__all__ = ["ServerProcess"]
