"""Developer tasks: ``nox -s tests lint typecheck``, ``nox -s bench``, ``nox -s docs``."""

from __future__ import annotations

import nox

nox.options.default_venv_backend = "uv|virtualenv"
nox.options.sessions = ["tests", "lint", "typecheck"]
nox.options.reuse_existing_virtualenvs = True

# Sessions run on the interpreter nox itself runs on: this project's machines have one
# Python, and `requires-python` plus the classifiers say which others are supported.


@nox.session
def tests(session: nox.Session) -> None:
    """Run the test suite against the local Notify server (and Redis, when installed)."""
    session.install("-e", ".[test]")
    session.run("pytest", *session.posargs)


@nox.session
def lint(session: nox.Session) -> None:
    """Ruff lint and format check."""
    session.install("pip>=25.1")  # --group needs it
    session.install("--group", "lint")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")


@nox.session
def typecheck(session: nox.Session) -> None:
    """mypy --strict on the package and the tests."""
    session.install("pip>=25.1")  # --group needs it
    session.install("-e", ".[test]", "--group", "typecheck")
    session.run("mypy", "--strict")
