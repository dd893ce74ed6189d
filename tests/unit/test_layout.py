"""The architecture as rules the code must keep (see the orchestrator package docstring).

Each rule reads the source with `ast`, so a violation names the file and line.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

from orchestrator.store import job_dir

REPO = Path(__file__).resolve().parents[2]
ORCHESTRATOR = REPO / "orchestrator"
MAX_MODULE_LINES = 450
JOB_DIR_NAMES = {
    job_dir.SPEC_FILE,
    job_dir.JOB_FILE,
    job_dir.LEDGER_FILE,
    job_dir.SEARCHER_STATE_FILE,
    job_dir.DRIVER_LOG,
    job_dir.DRIVER_PID_FILE,
    job_dir.LOCK_FILE,
    job_dir.REPORT_FILE,
    job_dir.WARM_START_FILE,
}


def modules(root: Path) -> list[Path]:
    return sorted(path for path in root.rglob("*.py") if "__pycache__" not in path.parts)


def imported(tree: ast.AST) -> Iterator[tuple[int, str]]:
    """(line, dotted module) of every import, relative ones included as written."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom) and node.module:
            yield node.lineno, node.module


def parse(path: Path) -> ast.AST:
    return ast.parse(path.read_text(encoding="utf-8"), filename=str(path))


def where(path: Path, line: int) -> str:
    return f"{path.relative_to(REPO)}:{line}"


def test_only_the_tune_subpackage_imports_ray() -> None:
    offenders = [
        where(path, line)
        for root in ("orchestrator", "search", "models")
        for path in modules(REPO / root)
        if not path.is_relative_to(ORCHESTRATOR / "tune")
        for line, module in imported(parse(path))
        if module == "ray" or module.startswith("ray.")
    ]
    assert offenders == []


@pytest.mark.parametrize("package", ["spec", "store", "trial", "control"])
def test_lower_layers_do_not_reach_up(package: str) -> None:
    """spec, store, trial and control know nothing of Tune, monitoring, reports or the API."""
    upper = ("orchestrator.tune", "orchestrator.monitor", "orchestrator.report", "orchestrator.api")
    offenders = [
        f"{where(path, line)} imports {module}"
        for path in modules(ORCHESTRATOR / package)
        for line, module in imported(parse(path))
        if module.startswith(upper) or module == "orchestrator.cli"
    ]
    assert offenders == []


def test_trainers_import_only_their_framework_and_the_standard_library() -> None:
    offenders = [
        f"{where(path, line)} imports {module}"
        for path in modules(REPO / "models")
        for line, module in imported(parse(path))
        if module.split(".")[0] in {"orchestrator", "search", "ray", "botorch"}
    ]
    assert offenders == []


def test_only_the_store_spells_the_job_directory_file_names() -> None:
    offenders = []
    for path in modules(ORCHESTRATOR):
        if path.is_relative_to(ORCHESTRATOR / "store"):
            continue
        tree = parse(path)
        docstrings = {
            id(node.body[0].value)
            for node in ast.walk(tree)
            if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef)
            and node.body
            and isinstance(node.body[0], ast.Expr)
            and isinstance(node.body[0].value, ast.Constant)
        }
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Constant)
                and isinstance(node.value, str)
                and id(node) not in docstrings
                and any(node.value == n or node.value.endswith("/" + n) for n in JOB_DIR_NAMES)
            ):
                offenders.append(f"{where(path, node.lineno)} spells {node.value!r}")
    assert offenders == []


def test_enum_values_are_not_compared_with_string_literals() -> None:
    """`spec.objective_type is ObjectiveType.MAXIMIZE`, never `.value == "Maximize"`."""
    offenders = []
    for path in modules(ORCHESTRATOR):
        for node in ast.walk(parse(path)):
            if not isinstance(node, ast.Compare):
                continue
            sides = [node.left, *node.comparators]
            has_value = any(isinstance(s, ast.Attribute) and s.attr == "value" for s in sides)
            has_text = any(isinstance(s, ast.Constant) and isinstance(s.value, str) for s in sides)
            if has_value and has_text:
                offenders.append(where(path, node.lineno))
    assert offenders == []


def test_modules_stay_small() -> None:
    long = {
        str(path.relative_to(REPO)): count
        for path in modules(ORCHESTRATOR)
        if (count := len(path.read_text(encoding="utf-8").splitlines())) > MAX_MODULE_LINES
    }
    assert long == {}


def test_the_readme_imports_keep_working() -> None:
    from orchestrator import FunctionTrainer, HyperparameterTuner, ScriptTrainer

    assert {FunctionTrainer.__name__, HyperparameterTuner.__name__, ScriptTrainer.__name__} == {
        "FunctionTrainer",
        "HyperparameterTuner",
        "ScriptTrainer",
    }
