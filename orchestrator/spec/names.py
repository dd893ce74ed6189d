"""Script-mode names: what a hyperparameter name must be to reach a training script intact.

A hyperparameter `name` reaches the trainer twice: as the `--name value` arguments and as the
`SM_HP_<NAME>` environment variable. A space or `=` would split or glue the arguments, a leading
`-` or `.` would read as an option, and two names that differ only by case would set the same
variable. The spec refuses such names when it is loaded; `orchestrator.trial.script_env` applies
the same rule again when it builds a trial's command line (this module is the one definition).
"""

from __future__ import annotations

import re
from collections.abc import Iterable

HYPERPARAMETER_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.\-]{0,255}")
HYPERPARAMETER_NAME_RULE = (
    "a hyperparameter name is 1-256 characters of letters, digits, '_', '.' and '-' and must "
    "not start with '-' or '.' (it becomes the --<name> argument and the SM_HP_<NAME> "
    "environment variable)"
)


def is_hyperparameter_name(name: object) -> bool:
    """Whether `name` follows `HYPERPARAMETER_NAME_RULE`."""
    return isinstance(name, str) and HYPERPARAMETER_NAME.fullmatch(name) is not None


def hyperparameter_variable(name: str) -> str:
    """The environment variable script mode sets for `name`: `SM_HP_<NAME>`."""
    return f"SM_HP_{name.upper()}"


def case_collisions(names: Iterable[str]) -> list[tuple[str, str]]:
    """(earlier, later) for each name that sets the same `SM_HP_<NAME>` as an earlier one."""
    first: dict[str, str] = {}
    collisions = []
    for name in names:
        variable = hyperparameter_variable(name)
        if variable in first:
            collisions.append((first[variable], name))
        else:
            first[variable] = name
    return collisions
