"""The documentation's code samples run, and its tables match the code they describe.

Samples are either included into pages from files (``--8<-- "docs/snippets/x.py:section"``)
that the tests below run, or written inline; the inline Python blocks of each page are run
in order, in one namespace per page, against the local Notify server.
"""

from __future__ import annotations

import ast
import importlib
import importlib.util
import inspect
import json
import logging
import re
import shlex
import sys
import textwrap
from pathlib import Path
from types import ModuleType
from typing import Any

import attrs
import pytest

import notify_async
import notify_async._exceptions
import notify_async.testing
from notify_async import AuthenticationError, NotifyClient
from notify_async._cli import EXIT_CODES, _parser
from notify_async._credentials import redact
from notify_async._retry import _IDEMPOTENT_STATUSES, _REFUSAL_STATUSES, AMBIGUOUS_STATUSES
from notify_async.testing import Fault, LocalNotifyServer, instant_retries

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
SNIPPETS = DOCS / "snippets"
PAGES = sorted(DOCS.glob("*.md"))
# Pages whose inline Python is run. Other pages (written elsewhere) are only compiled.
RUN_PAGES = [
    "index.md",
    "quickstart.md",
    "credentials.md",
    "retries.md",
    "recipes.md",
    "cli.md",
    "reference.md",
    "changelog.md",
]


@attrs.frozen
class Block:
    """A fenced code block of a page."""

    page: str
    line: int
    lang: str
    text: str


def blocks(page: Path) -> list[Block]:
    """Every fenced block of a Markdown page, indented ones (in admonitions) included."""
    found: list[Block] = []
    lines = page.read_text().splitlines()
    opening = re.compile(r"^(\s*)(```+)\s*([\w+-]*)")
    index = 0
    while index < len(lines):
        match = opening.match(lines[index])
        if match is None:
            index += 1
            continue
        indent, fence, lang = match.groups()
        body: list[str] = []
        index += 1
        while index < len(lines) and lines[index].strip() != fence:
            body.append(lines[index])
            index += 1
        found.append(Block(page.name, index - len(body), lang, _dedent(body, indent)))
        index += 1
    return found


def _dedent(body: list[str], indent: str) -> str:
    return "\n".join(line.removeprefix(indent) for line in body)


def includes(page: Path) -> list[str]:
    """The files a page includes with pymdownx.snippets, without their section names."""
    found = re.findall(r'--8<-- "([^"]+)"', page.read_text())
    return [name.split(":", 1)[0] for name in found]


def load(path: Path) -> ModuleType:
    """Import a sample file by path; its folder is read, not installed."""
    spec = importlib.util.spec_from_file_location(f"doc_{path.stem}", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def env(
    notify_server: LocalNotifyServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> LocalNotifyServer:
    """The environment a reader sets up in the quickstart, pointing at the local server."""
    monkeypatch.setenv("NOTIFY_API_KEY", notify_server.api_key)
    monkeypatch.setenv("NOTIFY_BASE_URL", notify_server.base_url)
    monkeypatch.chdir(tmp_path)
    return notify_server


# -- inline samples --------------------------------------------------------------------------------


def inline_python(page: Path) -> list[Block]:
    return [b for b in blocks(page) if b.lang == "python" and "--8<--" not in b.text]


@pytest.mark.parametrize("name", [name for name in RUN_PAGES if inline_python(DOCS / name)])
async def test_inline_python_of_the_page_runs(env: LocalNotifyServer, name: str) -> None:
    namespace: dict[str, Any] = {"__name__": f"docs_{name}"}
    samples = inline_python(DOCS / name)
    for block in samples:
        code = compile(
            block.text, f"{block.page}:{block.line}", "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT
        )
        # Top-level await makes the block a coroutine; without it, eval just runs it.
        result = eval(code, namespace)  # noqa: S307 - our own documentation
        if inspect.isawaitable(result):
            await result

    if any("await " in block.text for block in samples):
        assert sum(env.request_counts.values()) > 0  # it really talked to the server


def test_every_page_is_run_or_written_elsewhere() -> None:
    assert set(RUN_PAGES) <= {page.name for page in PAGES}


@pytest.mark.parametrize("page", PAGES, ids=lambda page: page.name)
def test_python_blocks_of_every_page_compile(page: Path) -> None:
    # Pages written by others are only compiled here; RUN_PAGES are also run above.
    for block in inline_python(page):
        compile(block.text, f"{block.page}:{block.line}", "exec", ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)


# -- included samples ------------------------------------------------------------------------------

SNIPPET_TESTS = {
    "quickstart.py",
    "template.py",
    "rotate.py",
    "secret_store_provider.py",
    "errors.py",
}


def test_every_included_sample_is_run_by_a_test() -> None:
    examples_tests = (ROOT / "tests" / "test_examples.py").read_text()
    for page in PAGES:
        for name in includes(page):
            path = ROOT / name
            assert path.is_file(), f"{page.name} includes {name}, which does not exist"
            if path.parent == SNIPPETS:
                assert path.name in SNIPPET_TESTS, f"no test runs {name}"
            elif path.parent == ROOT / "examples":
                assert f'load_example("{path.stem}")' in examples_tests, f"no test runs {name}"
            else:
                assert path.suffix != ".py", f"{page.name} includes {name} from outside the tests"
    assert {path.name for path in SNIPPETS.glob("*.py")} == SNIPPET_TESTS


async def test_quickstart_lists_and_sends(
    env: LocalNotifyServer, capsys: pytest.CaptureFixture[str]
) -> None:
    await load(SNIPPETS / "quickstart.py").main()

    out = capsys.readouterr().out.splitlines()
    assert out[0].split() == ["API", "key", "1", env.keys[0].prefix, "active=True"]
    assert out[1] == "Email sent successfully"
    [email] = env.emails
    assert (email.to, email.name) == ("ada@example.com", "Ada's app")


async def test_template_send(env: LocalNotifyServer) -> None:
    await load(SNIPPETS / "template.py").main()

    [email] = env.emails
    assert (email.template_id, email.variables) == ("welcome", {"first_name": "Ada"})


async def test_rotate_stores_the_new_key_and_records_its_prefix(
    env: LocalNotifyServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    key_file = tmp_path / "notify.key"
    await notify_async.FileKeyProvider(key_file).store(env.api_key)
    old = env.api_key

    with caplog.at_level(logging.INFO, logger="audit"):
        key_id = await load(SNIPPETS / "rotate.py").rotate(str(key_file))

    assert key_id == env.primary_key_id
    assert env.api_key != old
    assert await notify_async.FileKeyProvider(key_file).load() == env.api_key
    assert f"Notify API key is now {redact(env.api_key)}" in caplog.messages


async def test_secret_store_provider_pushes_the_rotation_without_a_401(
    env: LocalNotifyServer,
) -> None:
    await load(SNIPPETS / "secret_store_provider.py").main()

    assert len(env.emails) == 1
    assert env.request_counts["POST /api_keys/regenerate"] == 1
    assert env.auth_failures == 0  # the store's watch() told the other client first


@pytest.mark.parametrize(
    ("faults", "expected", "emails"),
    [
        ([], "sent", 1),
        ([Fault.drop_after()], "check", 1),
        ([Fault.status(502)], "check", 0),
        ([Fault.status(429, headers={"Retry-After": "120"})], "later:120.0", 0),
        ([Fault.status(400, body={"success": False, "message": "bad to"})], "refused", 0),
        ([Fault.status(429)] * 3, "later:None", 0),
        ([Fault.status(503)] * 3, "later", 0),
    ],
    ids=[
        "sent",
        "lost-reply",
        "502",
        "long-rate-limit",
        "400",
        "429-three-times",
        "503-three-times",
    ],
)
async def test_error_handling_sample(
    env: LocalNotifyServer, faults: list[Fault], expected: str, emails: int
) -> None:
    sample = load(SNIPPETS / "errors.py")
    env.inject("POST /send-email", *faults)

    async with NotifyClient() as client:
        with instant_retries():
            assert await sample.send_receipt(client, "ada@example.com") == expected

    assert len(env.emails) == emails


async def test_error_handling_sample_when_notify_is_unreachable(
    env: LocalNotifyServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    sample = load(SNIPPETS / "errors.py")
    async with LocalNotifyServer() as gone:
        monkeypatch.setenv("NOTIFY_BASE_URL", gone.base_url)

    async with NotifyClient() as client:
        with instant_retries():
            assert await sample.send_receipt(client, "ada@example.com") == "later"


async def test_error_handling_sample_lets_a_dead_key_through(env: LocalNotifyServer) -> None:
    sample = load(SNIPPETS / "errors.py")
    env.rotate()  # nobody publishes the new key

    async with NotifyClient(rotation_grace=0) as client:
        with pytest.raises(AuthenticationError):
            await sample.send_receipt(client, "ada@example.com")


async def test_errors_sample_main_sends_twice(env: LocalNotifyServer) -> None:
    await load(SNIPPETS / "errors.py").main()

    assert [email.subject for email in env.emails] == ["Your receipt", "Ping"]


# -- tables and lists that mirror the code ---------------------------------------------------------


def section(page: str, heading: str) -> str:
    """The text of a page from ``heading`` to the next heading of the same level or above."""
    text = (DOCS / page).read_text()
    level = heading.split(" ", 1)[0]
    start = text.index(heading + "\n")
    following = re.compile(rf"^#{{1,{len(level)}}} ", re.MULTILINE)
    end = following.search(text, start + len(heading))
    return text[start : end.start() if end else len(text)]


def table_rows(text: str) -> list[list[str]]:
    """The cells of each body row of the first Markdown table in ``text``."""
    rows = [line for line in text.splitlines() if line.startswith("|")]
    return [[cell.strip() for cell in row.strip("|").split("|")] for row in rows[2:]]


def test_exit_code_table_matches_the_cli() -> None:
    rows = table_rows(section("cli.md", "## Exit codes"))
    documented = [(cell[1].strip("`"), int(cell[0])) for cell in rows if cell[1]]
    codes = {code for code, *_ in rows}

    assert documented == [(kind.__name__, code) for kind, code in EXIT_CODES.items()]
    assert {"0", "130"} <= codes


def test_error_tree_matches_the_exceptions_module() -> None:
    docstring = notify_async._exceptions.__doc__
    assert docstring is not None
    tree = docstring.split("::\n\n", 1)[1].split("\n\n", 1)[0]
    [documented] = [b.text for b in blocks(DOCS / "retries.md") if b.text.startswith("NotifyError")]

    assert documented == textwrap.dedent(tree).replace("``", "")


def test_retry_policy_table_matches_the_policy() -> None:
    rows = table_rows(section("retries.md", "## The policy"))
    by_policy = {row[1].strip("`"): row for row in rows}

    def statuses(cell: str) -> set[int]:
        return {int(number) for number in re.findall(r"\b[1-5]\d\d\b", cell)}

    assert set(by_policy) == {"IDEMPOTENT", "UNSENT_ONLY"}
    assert statuses(by_policy["IDEMPOTENT"][2]) == _IDEMPOTENT_STATUSES
    assert statuses(by_policy["UNSENT_ONLY"][2]) == _REFUSAL_STATUSES
    assert statuses(by_policy["UNSENT_ONLY"][3]) == AMBIGUOUS_STATUSES


def test_the_api_reference_covers_every_public_name() -> None:
    reference = (DOCS / "reference.md").read_text()
    documented = set(re.findall(r"^::: (\S+)$", reference, re.MULTILINE))
    public = {f"notify_async.{name}" for name in notify_async.__all__}
    public |= {f"notify_async.testing.{name}" for name in notify_async.testing.__all__}

    assert public <= documented
    for name in documented:
        module, _, attribute = name.rpartition(".")
        assert hasattr(importlib.import_module(module), attribute), f"{name} does not exist"


def documented_commands() -> list[tuple[str, list[str]]]:
    """Every ``notify-async`` command line in the docs, as its arguments."""
    commands: list[tuple[str, list[str]]] = []
    for page in PAGES:
        for block in blocks(page):
            for line in block.text.splitlines():
                if block.lang == "yaml" and '"notify-async"' in line:
                    argv = json.loads(line.split(":", 1)[1])
                    commands.append((f"{page.name}:{block.line}", argv[1:]))
                    continue
                if block.lang != "console":
                    continue
                for program in ("notify-async ", "python -m notify_async "):
                    if program in line:
                        rest = line.split(program, 1)[1]
                        # Stop at the shell's redirections and pipes.
                        rest = re.split(r"\s(?:\d?>>?|\||;)", rest, maxsplit=1)[0]
                        commands.append((f"{page.name}:{block.line}", shlex.split(rest)))
    return commands


def test_the_docs_show_commands_of_every_kind() -> None:
    shown = {
        tuple(argv[:2]) if argv[0] == "keys" else (argv[0],) for _, argv in documented_commands()
    }

    assert {("keys", "list"), ("keys", "rotate"), ("send",), ("serve",), ("demo",)} <= shown


@pytest.mark.parametrize(("where", "argv"), documented_commands(), ids=str)
def test_every_documented_command_line_parses(where: str, argv: list[str]) -> None:
    if "--help" in argv:
        with pytest.raises(SystemExit) as exit_:
            _parser().parse_args(argv)
        assert exit_.value.code == 0, where
    else:
        _parser().parse_args(argv)  # argparse exits with 2 on a line it cannot parse


def test_readme_links_to_the_docs_and_every_link_resolves() -> None:
    readme = (ROOT / "README.md").read_text()
    links = re.findall(r"\]\(([^)#]+)(?:#[^)]*)?\)", readme)
    links += re.findall(r"^\[[^\]]+\]: (\S+?)(?:#\S*)?$", readme, re.MULTILINE)
    local = [link for link in links if "://" not in link]

    assert "docs/index.md" in local
    for link in local:
        assert (ROOT / link).exists(), f"README links to {link}, which does not exist"
