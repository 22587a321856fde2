"""A real ``redis-server`` process for tests and benchmarks: ``RedisServer``."""

from __future__ import annotations

import socket
import subprocess  # nosec B404 - starts redis-server, a fixed argv, never a shell
import time
from pathlib import Path

__all__ = ["RedisServer"]


def _free_port() -> int:
    """Return a TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


class RedisServer:
    """One ``redis-server`` process on 127.0.0.1, without persistence, that can restart.

    It needs the ``redis-server`` binary (``binary``), not the ``redis`` package::

        server = RedisServer(tmp_path)
        server.start()  # returns once the server answers PING
        try:
            ...  # RedisKeyProvider(server.url)
        finally:
            server.stop()

    ``restart()`` stops it and starts a new, empty one on the same port, as a Redis that
    went down and came back. Its log goes to ``directory / "redis.log"``.
    """

    def __init__(self, directory: Path, binary: str = "redis-server") -> None:
        self.directory = directory
        self.binary = binary
        self.port = _free_port()
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """The URL a client connects with."""
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        """Start the server and return once it answers PING."""
        log = (self.directory / "redis.log").open("ab")
        with log:
            # A fixed argv (the binary the caller named, a port, a folder), never a shell.
            self._process = subprocess.Popen(  # noqa: S603  # nosec B603
                [
                    self.binary,
                    "--port",
                    str(self.port),
                    "--bind",
                    "127.0.0.1",
                    "--save",
                    "",
                    "--appendonly",
                    "no",
                    "--dir",
                    str(self.directory),
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + 10
        while not self._answers_ping():
            if self._process.poll() is not None:
                raise RuntimeError(f"redis-server exited: see {self.directory / 'redis.log'}")
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError("redis-server did not answer PING within 10 s")
            time.sleep(0.01)

    def stop(self) -> None:
        """Stop the server (SIGTERM) and wait for it; its data is gone."""
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            process.terminate()
            process.wait(timeout=10)

    def restart(self) -> None:
        """Stop the server and start a new, empty one on the same port."""
        self.stop()
        self.start()

    def _answers_ping(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1) as conn:
                conn.sendall(b"PING\r\n")
                return conn.recv(16).startswith(b"+PONG")
        except OSError:
            return False
