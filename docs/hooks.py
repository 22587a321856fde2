"""MkDocs hooks for the documentation build (see ``hooks:`` in mkdocs.yml).

The package's docstrings introduce examples the reStructuredText way, with ``::`` before an
indented block, because they are also read in editors and ``help()``. Markdown keeps the
indented block as code but prints the ``::`` literally; this hook turns it into the ``:``
a reader expects.
"""

from __future__ import annotations

import re
from typing import Any

_ALONE = re.compile(r"<p>::</p>\s*")
_TRAILING = re.compile(r"::</p>")


def on_page_content(html: str, **kwargs: Any) -> str:
    """Drop a paragraph that is only ``::`` and end ``text::`` paragraphs with one colon."""
    return _TRAILING.sub(":</p>", _ALONE.sub("", html))
