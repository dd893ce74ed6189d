"""Bad `openamt` invocations: each ends with a named error (argparse's usage line, or
`error: ...` naming the field or file) and a non-zero exit, no traceback, and no job directory.

The command line runs in this process (`orchestrator.cli.main`), as the console script does;
tests/unit/test_cli.py runs it as a subprocess.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest
import yaml

from orchestrator.cli import EXIT_BAD_INPUT, EXIT_ERROR, main
from tests.unit.test_bad_input import bad_input, changed, continuous, minimal_job
from tests.unit.test_bad_input_table import alias_bomb

USAGE = 2  # argparse's exit status for a command line it cannot parse (same as a bad spec's)
ARGPARSE_WORDS = ("the following arguments are required", "invalid choice", "argument --")


@dataclasses.dataclass(frozen=True)
class Invocation:
    """`argv` with "{job}" standing for a job file written from `job` (changes to the minimal
    job, or YAML text), "{dir}" for an empty directory and "{log}" for a log holding `log`."""

    id: str
    argv: list[str]
    status: int
    message: str
    job: dict[str, Any] | str = dataclasses.field(default_factory=dict)
    log: str = ""

    @property
    def by_argparse(self) -> bool:
        """Refused by argparse (a usage line) rather than by openamt (an `error:` line)."""
        return self.status == USAGE and self.message.startswith(ARGPARSE_WORDS)


INVOCATIONS = [
    Invocation("no-command", [], USAGE, "the following arguments are required: COMMAND"),
    Invocation("unknown-command", ["frobnicate"], USAGE, "invalid choice: 'frobnicate'"),
    Invocation("tune-without-a-job", ["tune"], USAGE, "the following arguments are required: job"),
    Invocation(
        "tune-a-missing-file",
        ["tune", "{dir}/nope.yaml", "--no-metrics"],
        EXIT_BAD_INPUT,
        "<job file>: cannot be read: No such file or directory",
    ),
    Invocation(
        "validate-a-directory",
        ["validate", "{dir}"],
        EXIT_BAD_INPUT,
        "cannot be read: Is a directory",
    ),
    Invocation(
        "tune-an-alias-bomb",
        ["tune", "{job}", "--no-metrics"],
        EXIT_BAD_INPUT,
        "<job file>: expands to more than 20,000 YAML nodes",
        job=alias_bomb(7),
    ),
    Invocation(
        "tune-a-name-with-a-space",
        ["tune", "{job}", "--no-metrics"],
        EXIT_BAD_INPUT,
        "hyperparameter_ranges.learning rate: a hyperparameter name is 1-256 characters",
        job={"hyperparameter_ranges": {"learning rate": continuous(0.01, 0.1)}},
    ),
    Invocation(
        "tune-no-parallel-trials",
        ["tune", "{job}", "--no-metrics"],
        EXIT_BAD_INPUT,
        "max_parallel_jobs: Input should be greater than or equal to 1",
        job={"max_parallel_jobs": 0},
    ),
    Invocation(
        "tune-a-bad-port",
        ["tune", "{job}", "--metrics-port", "http"],
        USAGE,
        "argument --metrics-port: invalid int value: 'http'",
    ),
    Invocation(
        "validate-against-a-missing-log",
        ["validate", "{job}", "--sample-log", "{dir}/missing.log"],
        EXIT_ERROR,
        "No such file or directory",
    ),
    Invocation(
        "validate-against-a-log-without-metrics",
        ["validate", "{job}", "--sample-log", "{log}"],
        EXIT_BAD_INPUT,
        "metric_definitions[0].Regex: metric 'accuracy' matches no line of the log",
        log="epoch 1\nepoch 2\n",
    ),
    Invocation(
        "validate-a-file-that-is-not-utf8",
        ["validate", "{job}"],
        EXIT_BAD_INPUT,
        "is not UTF-8 text",
        job="name: caf\udce9\n",
    ),
    Invocation(
        "status-of-a-directory-that-is-no-job",
        ["status", "{dir}"],
        EXIT_ERROR,
        "is not an openamt job directory",
    ),
    Invocation(
        "best-of-a-missing-directory",
        ["best", "{dir}/gone"],
        EXIT_ERROR,
        "job directory {dir}/gone does not exist",
    ),
    Invocation(
        "export-without-a-format",
        ["export", "{dir}"],
        USAGE,
        "the following arguments are required: --csv",
    ),
    Invocation("data-unknown-set", ["data", "imagenet"], USAGE, "invalid choice: 'imagenet'"),
]


def materialize(invocation: Invocation, root: Path) -> list[str]:
    """The invocation's argv with its job file, directory and log written under `root`."""
    job, empty, log = root / "job.yaml", root / "empty", root / "trial.log"
    empty.mkdir()
    log.write_text(invocation.log)
    if isinstance(invocation.job, str):
        job.write_bytes(invocation.job.encode("utf-8", errors="surrogateescape"))
    else:
        job.write_text(yaml.safe_dump(changed(minimal_job(), invocation.job)))
    fill = {"{job}": str(job), "{dir}": str(empty), "{log}": str(log)}
    argv = []
    for part in invocation.argv:
        for key, value in fill.items():
            part = part.replace(key, value)
        argv.append(part)
    return argv


@bad_input("CLI invocations")
@pytest.mark.parametrize("invocation", INVOCATIONS, ids=[i.id for i in INVOCATIONS])
def test_a_bad_invocation_ends_with_a_named_error_and_creates_nothing(
    invocation: Invocation, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = materialize(invocation, tmp_path)

    try:
        status = main(argv)
    except SystemExit as exit_:  # argparse refused the command line
        status = exit_.code

    err = capsys.readouterr().err
    assert status == invocation.status, err
    assert invocation.message.replace("{dir}", str(tmp_path / "empty")) in " ".join(err.split())
    assert err.startswith("usage: openamt" if invocation.by_argparse else "error: "), err
    assert "Traceback" not in err
    assert not (tmp_path / "runs").exists()  # no job directory: no trial could have started
