"""Reading a job file: YAML to data, refusing what PyYAML would silently accept and documents
too large, too deep or too alias-laden to check quickly (`orchestrator.spec.yaml_bounds`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from orchestrator.errors import SpecError, SpecProblem
from orchestrator.spec.schema import JobSpec
from orchestrator.spec.yaml_bounds import MAX_FILE_BYTES, BoundedLoader, YamlBoundError


def load_job_spec(
    path: str | Path, *, base_dir: str | Path | None = None, check_paths: bool = True
) -> JobSpec:
    """Read and validate a YAML job file. Relative paths in it start from the file's directory
    unless `base_dir` says otherwise (e.g. reading back a job directory's spec.yaml)."""
    path = Path(path)
    source = str(path)
    try:
        with open(path, "rb") as handle:
            raw = handle.read(MAX_FILE_BYTES + 1)  # bounded: the path may be a device or a pipe
    except OSError as error:
        raise SpecError(
            [SpecProblem("<job file>", source, f"cannot be read: {error.strerror}")], source=source
        ) from None
    if len(raw) > MAX_FILE_BYTES:
        raise SpecError(
            [
                SpecProblem(
                    "<job file>",
                    source,
                    f"is larger than {MAX_FILE_BYTES:,} bytes, the limit for a job file "
                    "(one at SageMaker's limits is under half of that)",
                )
            ],
            source=source,
        )
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        raise SpecError(
            [
                SpecProblem(
                    "<job file>", source, f"is not UTF-8 text: {error.reason} at byte {error.start}"
                )
            ],
            source=source,
        ) from None
    data = parse_yaml(text, source=source)
    anchor = base_dir if base_dir is not None else path.parent
    return JobSpec.from_mapping(data, base_dir=anchor, check_paths=check_paths, source=source)


def parse_yaml(text: str, *, source: str | None = None) -> Any:
    """YAML to Python data, refusing duplicate keys (PyYAML silently keeps the last one, which
    would hide a parameter defined twice) and documents past `yaml_bounds`' limits."""
    loader = BoundedLoader(text)
    try:
        node = loader.get_single_node()
        duplicates = _duplicate_keys(node, "") if node is not None else []
        if duplicates:
            raise SpecError(duplicates, source=source)
        return loader.construct_document(node) if node is not None else None
    except YamlBoundError as error:
        raise SpecError([SpecProblem("<job file>", source, error.rule)], source=source) from None
    except yaml.YAMLError as error:
        raise SpecError(
            [
                SpecProblem(
                    "<job file>", source, f"is not valid YAML: {_describe_yaml_error(error)}"
                )
            ],
            source=source,
        ) from None
    finally:
        loader.dispose()


def _describe_yaml_error(error: yaml.YAMLError) -> str:
    """PyYAML's message on one line: what is wrong and where."""
    if isinstance(error, yaml.MarkedYAMLError) and error.problem_mark is not None:
        mark = error.problem_mark
        what = f"{error.context}, {error.problem}" if error.context else error.problem
        return f"{what} (line {mark.line + 1}, column {mark.column + 1})"
    return " ".join(str(error).split())


def _duplicate_keys(node: yaml.Node, path: str) -> list[SpecProblem]:
    problems = []
    if isinstance(node, yaml.MappingNode):
        seen: set[str] = set()
        for key_node, value_node in node.value:
            key = str(key_node.value)
            child = f"{path}.{key}" if path else key
            if key in seen:
                problems.append(
                    SpecProblem(
                        child,
                        key,
                        f"duplicate key (again on line {key_node.start_mark.line + 1}); "
                        "each name may appear once",
                    )
                )
            seen.add(key)
            problems += _duplicate_keys(value_node, child)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            problems += _duplicate_keys(item, f"{path}[{index}]")
    return problems
