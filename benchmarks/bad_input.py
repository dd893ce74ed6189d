"""The bad-input table of benchmarks/RESULTS.md, counted from the tests that try bad input.

Runs every test marked `@bad_input(kind)` (see tests/unit/test_bad_input.py) and prints, per
kind, how many cases the tests try, how many were refused as the test demands (a named error
naming the field, the value and the rule, before any trial runs) and the slowest case.

    .venv/bin/python benchmarks/bad_input.py
"""

from __future__ import annotations

import sys
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[1]
#: Cases whose time the table's notes quote: issue 15's alias bomb and deep nesting.
HIGHLIGHTS = ("alias-bomb-of-ten-million-nodes", "flow-nesting-5000-deep", "tune-an-alias-bomb")
TEST_FILES = [
    "tests/unit/test_bad_input.py",
    "tests/unit/test_bad_input_table.py",
    "tests/unit/test_warm_start.py",
    "tests/unit/test_bad_input_cli.py",
]


@dataclass
class Tally:
    cases: int = 0
    refused: int = 0
    slowest_s: float = 0.0
    slowest: str = ""
    failed: list[str] = field(default_factory=list)


class CountBadInput:
    """A pytest plugin: keeps only `@bad_input` tests and tallies their outcomes by kind."""

    def __init__(self) -> None:
        self.kinds: dict[str, str] = {}  # node id -> kind
        self.tallies: dict[str, Tally] = defaultdict(Tally)
        self.durations: dict[str, float] = {}  # node id -> seconds of its call

    def pytest_collection_modifyitems(self, config: Any, items: list[Any]) -> None:
        kept = []
        for item in items:
            kind = getattr(getattr(item, "function", None), "bad_input", None)
            if kind is not None:
                self.kinds[item.nodeid] = kind
                kept.append(item)
        items[:] = kept

    def pytest_runtest_logreport(self, report: Any) -> None:
        kind = self.kinds.get(report.nodeid)
        if kind is None or (report.when != "call" and report.passed):
            return
        tally = self.tallies[kind]
        if report.when == "call":
            self.durations[report.nodeid] = report.duration
            tally.cases += 1
            tally.refused += report.passed
            if report.duration > tally.slowest_s:
                tally.slowest_s, tally.slowest = report.duration, report.nodeid.split("::")[-1]
        if report.failed:
            tally.failed.append(report.nodeid)


def table(tallies: dict[str, Tally], kinds: tuple[str, ...]) -> str:
    rows = [
        "| bad input | cases the tests try | refused with a named error | slowest case |",
        "| --- | ---: | ---: | --- |",
    ]
    for kind in kinds:
        tally = tallies.get(kind, Tally())
        rows.append(
            f"| {kind} | {tally.cases} | {tally.refused} | "
            f"{tally.slowest_s * 1000:.0f} ms (`{tally.slowest}`) |"
        )
    total = sum(t.cases for t in tallies.values())
    refused = sum(t.refused for t in tallies.values())
    rows.append(f"| **all** | **{total}** | **{refused}** | |")
    return "\n".join(rows)


def main() -> int:
    sys.path.insert(0, str(REPO))
    from tests.unit.test_bad_input import KINDS

    plugin = CountBadInput()
    status = pytest.main(["-q", "-p", "no:cacheprovider", *TEST_FILES], plugins=[plugin])
    print()
    print(table(plugin.tallies, KINDS))
    for case in HIGHLIGHTS:
        for node, seconds in plugin.durations.items():
            if f"[{case}]" in node:
                print(f"{case}: refused in {seconds * 1000:.1f} ms (the whole test)")
    failed = [node for tally in plugin.tallies.values() for node in tally.failed]
    for node in failed:
        print(f"NOT REFUSED AS EXPECTED: {node}")
    return int(status) if failed or status not in (0, 5) else 0


if __name__ == "__main__":
    raise SystemExit(main())
