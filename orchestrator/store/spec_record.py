"""The spec a job directory records, and the check that a rerun is the same job."""

from __future__ import annotations

from typing import Any

import yaml

from orchestrator.errors import ResumeError, SpecError
from orchestrator.spec import JobSpec
from orchestrator.store.job_dir import JobDir, write_atomic

#: Spec fields that may change between runs of one job; anything else must match.
RESUMABLE_CHANGES = frozenset({"max_jobs", "max_parallel_jobs", "output_path"})


def record_spec(job_dir: JobDir, spec: JobSpec) -> None:
    """First run: record the spec. Later runs: refuse a different job in the same directory.

    The recorded spec is compared after filling in defaults, so a field a newer openamt added
    (with its default) does not make an older job a different one."""
    current = spec.to_mapping()
    if job_dir.spec_path.exists():
        recorded = _with_defaults(
            yaml.safe_load(job_dir.spec_path.read_text(encoding="utf-8")) or {}, job_dir
        )
        changed = sorted(
            key
            for key in set(recorded) | set(current)
            if key not in RESUMABLE_CHANGES and recorded.get(key) != current.get(key)
        )
        if changed:
            raise ResumeError(
                f"{job_dir.path} holds a job with a different spec (changed: "
                f"{', '.join(changed)}). Use another name or output_path for a new job; only "
                f"{', '.join(sorted(RESUMABLE_CHANGES))} may change when resuming."
            )
    write_atomic(job_dir.spec_path, yaml.safe_dump(current, sort_keys=False))


def _with_defaults(recorded: dict[str, Any], job_dir: JobDir) -> dict[str, Any]:
    try:
        return JobSpec.from_mapping(recorded, base_dir=job_dir.path, check_paths=False).to_mapping()
    except SpecError:
        return recorded  # compared as written; any difference is reported as a change
