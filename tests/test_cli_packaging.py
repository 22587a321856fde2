"""Packaging metadata: where the project lives, a development version until the first
release, and a README whose links work where it is read off the repository (PyPI)."""

from __future__ import annotations

import re
from pathlib import Path

import notify_async

ROOT = Path(__file__).resolve().parent.parent
PYPROJECT = (ROOT / "pyproject.toml").read_text()


def project_urls() -> dict[str, str]:
    section = PYPROJECT.split("[project.urls]\n", 1)[1].split("\n\n", 1)[0]
    return dict(re.findall(r'^(\w[\w-]*) = "(\S+)"$', section, re.MULTILINE))


def test_the_package_names_its_documentation_changelog_source_and_issues() -> None:
    urls = project_urls()

    assert set(urls) == {"Documentation", "Changelog", "Source", "Issues"}
    assert all(url.startswith("https://") for url in urls.values())
    assert urls["Changelog"] == urls["Source"] + "/blob/main/CHANGELOG.md"
    assert urls["Issues"] == urls["Source"] + "/issues"


def test_the_version_is_a_development_version_until_the_first_release() -> None:
    changelog = (ROOT / "CHANGELOG.md").read_text()
    [latest] = re.findall(r"^## (\S+) \((.+)\)$", changelog, re.MULTILINE)[:1]
    release, state = latest

    if state == "unreleased":
        assert re.fullmatch(rf"{re.escape(release)}\.dev\d+", notify_async.__version__)
    else:
        assert notify_async.__version__ == release


def readme_links() -> list[tuple[int, str]]:
    """Every link target of the README, inline or by reference, with its line number."""
    found: list[tuple[int, str]] = []
    for number, line in enumerate((ROOT / "README.md").read_text().splitlines(), 1):
        found += [(number, link) for link in re.findall(r"\]\(([^)\s]+)\)", line)]
        found += [(number, link) for link in re.findall(r"^\[[^\]]+\]: (\S+)$", line)]
    return found


def test_the_readme_links_work_off_the_repository() -> None:
    in_repository = project_urls()["Source"] + "/blob/main/"
    lines = (ROOT / "README.md").read_text().splitlines()
    links = readme_links()

    assert len(links) >= 10
    for number, link in links:
        if lines[number - 1].startswith("- [Performance]("):
            # That sentence is rewritten with the benchmarks, which own it.
            continue
        assert link.startswith("https://"), f"README line {number}: {link} is relative"
        if link.startswith(in_repository):
            path = link.removeprefix(in_repository).split("#", 1)[0]
            assert (ROOT / path).is_file(), f"README line {number}: {path} does not exist"
