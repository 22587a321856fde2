"""Writing a small file so that a reader sees the old content or the new, never half of it."""

from __future__ import annotations

__all__ = ["write_atomically"]

import contextlib
import os
import tempfile
from pathlib import Path


def write_atomically(path: str | os.PathLike[str], text: str) -> None:
    """Replace the file at ``path`` with ``text`` (UTF-8, mode 0600), atomically and durably.

    The text goes to a temporary file in the same folder (created 0600 before a byte is
    written), is flushed and fsynced, and is renamed over ``path``; then the folder is
    fsynced so that the rename survives a crash too. A reader racing the write sees either
    the old file or the new one, and a crash never leaves an empty key file behind.
    """
    target = Path(path)
    fd, temp_name = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as temp:
            temp.write(text)
            temp.flush()
            os.fsync(temp.fileno())
        os.replace(temp_name, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temp_name)
        raise
    # Make the rename itself durable, where the platform allows opening a folder.
    with contextlib.suppress(OSError):
        folder_fd = os.open(target.parent, os.O_RDONLY)
        try:
            os.fsync(folder_fd)
        finally:
            os.close(folder_fd)
