"""Run one SageMaker training job's script as SageMaker's training toolkit does (`Estimator.fit`).

    python script_runner.py SCRIPT [--name value ...]

A training job succeeds when its script exits 0, whatever it prints; an openamt trial succeeds
when its objective metric was printed. So `fit` runs the script through this file, which prints
`EXIT_LINE` after the script exits 0, and the job's objective is that line. It also does what
the toolkit does with the platform's own hyperparameters: `sagemaker_*` ones (the job's name)
never reach the script: they are taken out of its arguments and of `SM_HPS`, `SM_USER_ARGS`,
`SM_TRAINING_ENV` and `SM_HP_*`, and `sagemaker_job_name` becomes `SM_TRAINING_ENV`'s
`job_name`. The script runs as `__main__` in this process (signals, exit status and
tracebacks are its own), with `sys.argv[0]` the script and its directory first on `sys.path`.

Standard library only: it runs in the trainer's interpreter (an MXNet or PyTorch environment).
"""

from __future__ import annotations

import json
import os
import runpy
import sys

EXIT_LINE = "[openamt] training script exited with status 0"
EXIT_REGEX = r"\[openamt\] training script exited with status (0)$"
PLATFORM_PREFIX = "sagemaker_"


def split_arguments(args: list[str]) -> tuple[list[str], dict[str, str]]:
    """(the script's arguments, the platform's `--sagemaker_* value` pairs)."""
    kept: list[str] = []
    platform: dict[str, str] = {}
    index = 0
    while index < len(args):
        flag = args[index]
        name = flag[2:] if flag.startswith("--") else ""
        if name.startswith(PLATFORM_PREFIX) and index + 1 < len(args):
            platform[name] = args[index + 1]
            index += 2
            continue
        kept.append(flag)
        index += 1
    return kept, platform


def clean_environment(environ: dict[str, str], platform: dict[str, str]) -> None:
    """Remove the platform's hyperparameters from the script-mode variables (in place)."""
    for name in list(environ):
        if name.startswith("SM_HP_" + PLATFORM_PREFIX.upper()):
            del environ[name]
    if "SM_HPS" in environ:
        hps = json.loads(environ["SM_HPS"])
        environ["SM_HPS"] = json.dumps(_without_platform(hps), sort_keys=True)
    if "SM_USER_ARGS" in environ:
        environ["SM_USER_ARGS"] = json.dumps(
            split_arguments(json.loads(environ["SM_USER_ARGS"]))[0]
        )
    if "SM_TRAINING_ENV" in environ:
        training_env = json.loads(environ["SM_TRAINING_ENV"])
        training_env["hyperparameters"] = _without_platform(training_env.get("hyperparameters", {}))
        if "sagemaker_job_name" in platform:
            training_env["job_name"] = platform["sagemaker_job_name"]
        environ["SM_TRAINING_ENV"] = json.dumps(training_env, sort_keys=True)


def _without_platform(hyperparameters: dict[str, object]) -> dict[str, object]:
    return {k: v for k, v in hyperparameters.items() if not k.startswith(PLATFORM_PREFIX)}


def _exit_status(code: object) -> int:
    """The process exit status `sys.exit(code)` gives."""
    if code is None:
        return 0
    if isinstance(code, int):
        return code & 0xFF
    return 1


def main(argv: list[str]) -> None:
    if not argv:
        sys.exit("usage: script_runner.py SCRIPT [--name value ...]")
    script, (args, platform) = argv[0], split_arguments(argv[1:])
    clean_environment(os.environ, platform)  # type: ignore[arg-type]
    sys.argv = [script, *args]
    sys.path[0] = os.path.dirname(os.path.abspath(script))
    code: object = None
    try:
        runpy.run_path(script, run_name="__main__")
    except SystemExit as exit_request:
        code = exit_request.code
    if _exit_status(code) == 0:
        sys.stdout.flush()
        print(EXIT_LINE, flush=True)
    sys.exit(code)


if __name__ == "__main__":
    main(sys.argv[1:])
