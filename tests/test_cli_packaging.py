"""Packaging metadata: a development version until the first release."""

from __future__ import annotations

import re
from pathlib import Path

import notify_async

ROOT = Path(__file__).resolve().parent.parent
PYPROJECT = (ROOT / "pyproject.toml").read_text()


def test_the_version_is_a_development_version_until_the_first_release() -> None:
    changelog = (ROOT / "CHANGELOG.md").read_text()
    [latest] = re.findall(r"^## (\S+) \((.+)\)$", changelog, re.MULTILINE)[:1]
    release, state = latest

    if state == "unreleased":
        assert re.fullmatch(rf"{re.escape(release)}\.dev\d+", notify_async.__version__)
    else:
        assert notify_async.__version__ == release
