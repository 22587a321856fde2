"""Developer tasks: ``nox -s tests lint typecheck``, ``nox -s security``, ``nox -s bench``,
``nox -s docs``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

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


@nox.session
def bench(session: nox.Session) -> None:
    """Benchmarks against a local server process: writes docs/performance.md and the chart.

    Never part of the test suite or CI; see docs/performance.md. Extra arguments go to
    the runner, e.g. ``nox -s bench -- --quick`` (a short run that leaves the docs alone).
    """
    session.install("pip>=25.1")  # --group needs it
    session.install("-e", ".", "--group", "bench")
    session.run("python", "-m", "benchmarks", *session.posargs)


@nox.session
def docs(session: nox.Session) -> None:
    """Build the documentation site into site/ with ``mkdocs build --strict``.

    Strict mode turns every warning into a failure: a broken link, a missing snippet, or an
    API reference entry that does not resolve. ``nox -s docs -- serve`` previews it instead.
    """
    session.install("pip>=25.1")  # --group needs it
    session.install("--group", "docs")
    if session.posargs[:1] == ["serve"]:
        session.run("mkdocs", "serve", *session.posargs[1:])
    else:
        session.run("mkdocs", "build", "--strict", *session.posargs)


# pip-audit asks one of these advisory services about every installed package, in order.
_ADVISORY_SERVICES = ("pypi", "osv")


@nox.session
def security(session: nox.Session) -> None:
    """Bandit on the package; pip-audit on the dependencies installed with it.

    Bandit must report nothing: each finding is fixed, or justified where it stands with a
    comment and ``# nosec <id>`` (docs/security.md lists them). pip-audit must find no known
    vulnerability in the package's dependencies, its test extra and the scanners.

    pip-audit needs its advisory service (PyPI's JSON API, or OSV as a fallback). When
    neither answers for every package, nothing was audited, however pip-audit exits (it
    prints "No known vulnerabilities found" when every lookup failed): the session then
    ends as SKIPPED with the reason, never as passed. ``nox -s security -- --require-audit``
    makes that a failure, for a CI that has network access.
    """
    require_audit = "--require-audit" in session.posargs
    session.install("pip>=25.1")  # --group needs it
    session.install("-e", ".[test]", "--group", "security")
    session.run("bandit", "--recursive", "notify_async")

    unreachable = []
    for service in _ADVISORY_SERVICES:
        report, error = _pip_audit(session, service)
        if report is None:
            unreachable.append(f"{service}: {error}")
            continue
        dependencies: list[dict[str, Any]] = report["dependencies"]
        skipped = [d for d in dependencies if "skip_reason" in d]
        audited = [d for d in dependencies if "skip_reason" not in d]
        if not audited:
            unreachable.append(
                f"{service}: all {len(skipped)} lookups failed, e.g. {skipped[0]['skip_reason']}"
                if skipped
                else f"{service}: no package to audit"
            )
            continue
        vulnerable = [d for d in audited if d["vulns"]]
        if vulnerable:
            session.error(
                "pip-audit found known vulnerabilities: "
                + "; ".join(
                    f"{d['name']} {d['version']}: "
                    + ", ".join(
                        f"{v['id']} (fixed in {v['fix_versions'] or 'no release'})"
                        for v in d["vulns"]
                    )
                    for d in vulnerable
                )
            )
        if skipped:
            _not_audited(
                session,
                require_audit,
                f"pip-audit ({service}) audited {len(audited)} packages with no known "
                f"vulnerability, but could not look up {len(skipped)}: "
                + ", ".join(d["name"] for d in skipped),
            )
        session.log(
            f"pip-audit ({service}): {len(audited)} packages audited, no known vulnerability"
        )
        return
    _not_audited(
        session,
        require_audit,
        "pip-audit could not reach its advisory service, so the dependencies were NOT "
        "audited (" + "; ".join(unreachable) + "). Bandit passed.",
    )


def _pip_audit(session: nox.Session, service: str) -> tuple[dict[str, Any] | None, str]:
    """Run pip-audit against ``service``; return its JSON report, or None and why not."""
    report = Path(session.create_tmp()) / f"pip-audit-{service}.json"
    report.unlink(missing_ok=True)
    output = session.run(
        "pip-audit",
        "--vulnerability-service",
        service,
        "--skip-editable",  # notify-async itself, which is not on PyPI under this version
        "--progress-spinner",
        "off",
        "--format",
        "json",
        "--output",
        str(report),
        # 1 is "vulnerabilities found" with a report, or a crash (an unreachable service)
        # without one: the report tells which.
        success_codes=[0, 1],
        silent=True,
    )
    if not report.exists():
        lines = [line for line in str(output or "").splitlines() if line.strip()]
        return None, lines[-1] if lines else "pip-audit wrote no report"
    data: dict[str, Any] = json.loads(report.read_text())
    return data, ""


def _not_audited(session: nox.Session, require_audit: bool, reason: str) -> None:
    # Skipped, not passed: nox's summary then shows "security: skipped" with the reason.
    if require_audit:
        session.error(reason)
    session.skip(reason)
