"""``NOTIFY_LOG=debug|info``: turn on the library's log on stderr without writing code.

Like ``OPENAI_LOG`` and ``STRIPE_LOG``: read once, when ``notify_async`` is imported. It adds
one stderr handler to the ``notify_async`` logger and sets its level; an application that
configures logging itself does not need it. Records never hold a key, only its prefix.
"""

from __future__ import annotations

__all__ = ["setup_from_environment"]

import logging
import os
import sys

logger = logging.getLogger("notify_async")

_LEVELS = {"debug": logging.DEBUG, "info": logging.INFO}


def setup_from_environment() -> None:
    """Add a stderr handler at the level ``NOTIFY_LOG`` names, if it names one."""
    value = os.environ.get("NOTIFY_LOG", "").strip().lower()
    if not value:
        return
    level = _LEVELS.get(value)
    if level is None:
        print(
            f"notify_async: ignoring NOTIFY_LOG={value!r}; use 'debug' or 'info'",
            file=sys.stderr,
        )
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("[%(asctime)s %(levelname)s %(name)s] %(message)s"))
    logger.addHandler(handler)
    logger.setLevel(level)
