"""The package's shape: no import cycles, and options that cannot be changed by accident.

The import graph is read from the sources with ``ast``, imports under ``TYPE_CHECKING``
included: a cycle that only the type checker follows is still a cycle for a reader.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

import notify_async
from notify_async import NotifyClient

PACKAGE = Path(notify_async.__file__).resolve().parent


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_modules(path: Path, modules: set[str]) -> set[str]:
    """The package's modules that ``path`` imports, at any level of the file."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                target = f"{base}.{node.module}" if node.module else base
            else:
                target = node.module or ""
            candidates = [target] + [f"{target}.{alias.name}" for alias in node.names]
        elif isinstance(node, ast.Import):
            candidates = [alias.name for alias in node.names]
        else:
            continue
        found.update(c for c in candidates if c in modules and c != name)
    return found


def import_graph() -> dict[str, set[str]]:
    paths = [p for p in PACKAGE.rglob("*.py") if "__pycache__" not in p.parts]
    modules = {module_name(p) for p in paths}
    return {module_name(p): imported_modules(p, modules) for p in paths}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    visiting: list[str] = []
    done: set[str] = set()

    def visit(module: str) -> list[str] | None:
        if module in visiting:
            return [*visiting[visiting.index(module) :], module]
        if module in done:
            return None
        visiting.append(module)
        for imported in sorted(graph.get(module, ())):
            cycle = visit(imported)
            if cycle:
                return cycle
        visiting.pop()
        done.add(module)
        return None

    for module in sorted(graph):
        cycle = visit(module)
        if cycle:
            return cycle
    return None


def test_the_import_graph_has_no_cycle() -> None:
    graph = import_graph()

    assert "notify_async._client" in graph  # the walk really saw the package
    assert "notify_async._keys" in graph["notify_async._client"]
    assert find_cycle(graph) is None, " -> ".join(find_cycle(graph) or [])


def test_the_cycle_finder_finds_a_cycle() -> None:
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_resources_never_import_the_client() -> None:
    graph = import_graph()

    for resource in ("notify_async._api_keys", "notify_async._emails"):
        assert "notify_async._client" not in graph[resource]


@pytest.mark.parametrize(
    ("option", "value"),
    [("timeout", 0.1), ("max_retries", 0), ("connect_timeout", 1.0), ("base_url", "x")],
)
def test_options_are_read_only_after_construction(option: str, value: object) -> None:
    client = NotifyClient("nk_test_key_000000000000000000000000")

    with pytest.raises(AttributeError):
        setattr(client, option, value)
    # with_options is the way to change them.
    if option in ("timeout", "max_retries", "connect_timeout"):
        view = client.with_options(**{option: value})  # type: ignore[arg-type]
        assert getattr(view, option) == value
        assert getattr(client, option) != value


def test_importing_the_package_leaves_cattrs_msgspec_and_tenacity_for_later() -> None:
    # Each is imported on first use (a refused body, the first model read, a retried
    # failure): cattrs and tenacity were a fifth of what `import notify_async` added to
    # `import aiohttp`, and msgspec would add about 4 ms more.
    probe = (
        "import sys, notify_async; "
        "print(sorted({'cattrs', 'msgspec', 'tenacity'} & set(sys.modules)))"
    )
    loaded = subprocess.run(  # noqa: S603  # a fixed probe, run by this interpreter
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    ).stdout
    assert loaded.strip() == "[]"
