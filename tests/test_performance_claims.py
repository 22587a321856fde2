"""The README quotes the benchmark: its numbers must be those of the committed results."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

TIMES = "\N{MULTIPLICATION SIGN}"  # the README writes a ratio as 1.05 and this sign
ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results" / "latest.json"


def cpu_ratio(results: dict[str, Any], call: str, keys: int, client: str) -> float:
    for scenario in results["overhead"]["scenarios"]:
        if (scenario["call"], scenario["keys"], scenario["concurrency"]) == (call, keys, 50):
            for row in scenario["clients"]:
                if row["client"] == client:
                    ratio: float = row["cpu_ratio_to_raw"]
                    return ratio
    raise AssertionError(f"no {call}/{keys} row for {client} in {RESULTS.name}")


def readme_performance_line() -> str:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    match = re.search(r"<!-- perf:start.*?-->\n(.*?)<!-- perf:end -->", readme, re.DOTALL)
    assert match is not None, "README.md has lost its performance markers"
    return " ".join(match.group(1).split())


def test_the_readme_quotes_the_committed_benchmark_results() -> None:
    results = json.loads(RESULTS.read_text(encoding="utf-8"))
    line = readme_performance_line()
    expected = [
        f"listing 3 keys costs {cpu_ratio(results, 'list', 3, 'notify-async'):.2f}{TIMES}",
        f"100 keys {cpu_ratio(results, 'list', 100, 'notify-async'):.2f}{TIMES}",
        f"1,000 keys {cpu_ratio(results, 'list', 1_000, 'notify-async'):.2f}{TIMES}",
        f"sending costs {cpu_ratio(results, 'send', 3, 'notify-async'):.2f}{TIMES}",
        f"wrapper costs {cpu_ratio(results, 'list', 3, 'naive wrapper'):.2f}{TIMES}",
        f"takes {results['import_time']['ratio']:.2f}{TIMES} the time of `import aiohttp`",
    ]
    for phrase in expected:
        assert phrase in line, f"README says {line!r}; {RESULTS.name} gives {phrase!r}"


def test_the_performance_doc_reports_every_target_as_met_or_missed() -> None:
    doc = (ROOT / "docs" / "performance.md").read_text(encoding="utf-8")
    targets = doc.split("### Targets", 1)[1].split("###", 1)[0]
    rows = [line for line in targets.splitlines() if line.startswith("| ") and "Goal" not in line]
    rows = [row for row in rows if not row.startswith("| ---")]
    assert len(rows) >= 6
    for row in rows:
        assert row.rstrip().endswith(("| met |", "| **missed** |")), row
