"""Benchmarks of notify-async against a local Notify server running in its own process.

Run them with ``nox -s bench`` (or ``python -m benchmarks``). They are never part of the
test suite: they report numbers, they assert nothing. See ``docs/performance.md``.
"""
