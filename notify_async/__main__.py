"""``python -m notify_async``: the command line; see ``notify_async._cli``."""

from notify_async._cli import main

__all__ = ["main"]

if __name__ == "__main__":
    raise SystemExit(main())
