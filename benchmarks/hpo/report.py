"""The markdown report of a set of runs, and whether any openamt run failed."""

from __future__ import annotations

from typing import Any

from benchmarks.hpo.methods import METHODS
from benchmarks.hpo.problems import PROBLEMS
from benchmarks.hpo.runner import ASYNC_SETTINGS, SETTINGS
from benchmarks.hpo.scoring import mean, paired, scores_by

OURS = "openamt"


def render(runs: list[dict[str, Any]], references: dict[str, dict[str, Any]]) -> tuple[str, bool]:
    table = scores_by(runs, references)
    lines: list[str] = []
    for setting in SETTINGS | ASYNC_SETTINGS:
        problems = [p for p in PROBLEMS if (setting, p) in table]
        if problems:
            lines += _setting_section(setting, problems, table)
    lines += _parallel_penalty(table)
    failures = _failures(runs)
    lines += _telemetry(runs, failures)
    return "\n".join(lines), bool(failures)


def _setting_section(
    setting: str, problems: list[str], table: dict[tuple[str, str], dict[str, dict[int, float]]]
) -> list[str]:
    methods = [m for m in METHODS if all(m in table[(setting, p)] for p in problems)]
    seeds = {len(table[(setting, p)][m]) for p in problems for m in methods}
    lines = [
        "",
        f"### {setting} (trials x parallel), seeds per cell: {sorted(seeds)}",
        "",
        "| problem | " + " | ".join(methods) + " |",
        "|" + "---|" * (len(methods) + 1),
    ]
    for problem in problems:
        cells = table[(setting, problem)]
        best = max(mean(cells[m].values()) for m in methods)
        row = []
        for m in methods:
            value = mean(cells[m].values())
            row.append(f"**{value:.1f}**" if value == best else f"{value:.1f}")
        lines.append(f"| {problem} | " + " | ".join(row) + " |")
    means = {m: mean(mean(table[(setting, p)][m].values()) for p in problems) for m in methods}
    lines.append("| **mean** | " + " | ".join(f"**{means[m]:.1f}**" for m in methods) + " |")
    if OURS not in methods:
        return lines
    peers = [m for m in methods if m not in (OURS, "random")]
    lines += ["", f"Paired per-seed difference {OURS} - peer, mean [95% CI]:", ""]
    lines.append("| problem | " + " | ".join(peers) + " |")
    lines.append("|" + "---|" * (len(peers) + 1))
    ahead_all = best_or_tied = 0
    for problem in problems:
        cells = table[(setting, problem)]
        comparisons = {m: paired(cells[OURS], cells[m]) for m in peers}
        lines.append(f"| {problem} | " + " | ".join(str(comparisons[m]) for m in peers) + " |")
        ours = mean(cells[OURS].values())
        ahead_all += all(ours > mean(cells[m].values()) for m in peers)
        best_or_tied += all(
            ours >= mean(cells[m].values()) or (c is not None and c.high >= 0)
            for m, c in comparisons.items()
        )
    best_peer = max(peers, key=means.get) if peers else None
    overall = {m: _per_seed_means(table, setting, problems, m) for m in [OURS, *peers]}
    lines += [
        "",
        f"- mean: {OURS} {means[OURS]:.1f}"
        + (f", best peer {best_peer} {means[best_peer]:.1f}" if best_peer else ""),
        f"- {OURS} - peer on the mean over problems, paired per seed: "
        + ", ".join(f"{m} {paired(overall[OURS], overall[m])}" for m in peers),
        f"- {OURS} ahead of every peer (higher mean) on {ahead_all}/{len(problems)} problems; "
        f"best or tied (no peer significantly better) on {best_or_tied}/{len(problems)}",
    ]
    return lines


def _per_seed_means(
    table: dict[tuple[str, str], dict[str, dict[int, float]]],
    setting: str,
    problems: list[str],
    method: str,
) -> dict[int, float]:
    """``{seed: mean score over problems}`` for the seeds every problem has."""
    seeds = set.intersection(*(set(table[(setting, p)][method]) for p in problems))
    return {s: mean(table[(setting, p)][method][s] for p in problems) for s in seeds}


#: ``(two in parallel, eight in parallel)`` setting pairs whose difference is reported.
PARALLEL_PAIRS = (("30x2", "32x8"), ("30x2-async", "32x8-async"), ("30x2", "32x8-async"))


def _parallel_penalty(table: dict[tuple[str, str], dict[str, dict[int, float]]]) -> list[str]:
    """openamt at 2 in parallel minus openamt at 8, paired by problem and seed, for each
    pair of settings that both ran."""
    lines = []
    for two_setting, eight_setting in PARALLEL_PAIRS:
        two = _ours_by_problem_and_seed(table, two_setting)
        eight = _ours_by_problem_and_seed(table, eight_setting)
        keys = {k: i for i, k in enumerate(sorted(set(two) & set(eight)))}
        if len(keys) < 2:
            continue
        comparison = paired(
            {i: two[k] for k, i in keys.items()}, {i: eight[k] for k, i in keys.items()}
        )
        lines += [
            "",
            f"{OURS} {two_setting} - {eight_setting}, paired over {comparison.n} "
            f"(problem, seed) pairs: {comparison}",
        ]
    return lines


def _ours_by_problem_and_seed(
    table: dict[tuple[str, str], dict[str, dict[int, float]]], setting: str
) -> dict[tuple[str, int], float]:
    return {
        (problem, seed): value
        for (name, problem), cells in table.items()
        if name == setting
        for seed, value in cells.get(OURS, {}).items()
    }


def _failures(runs: list[dict[str, Any]]) -> list[str]:
    failures = []
    for run in runs:
        telemetry = run.get("telemetry")
        if telemetry and (telemetry["fallback_count"] or telemetry["nan_picks"]):
            failures.append(
                f"{run['setting']} {run['problem']} {run['method']} seed {run['seed']}: "
                f"{telemetry['fallback_count']} fallbacks, {telemetry['nan_picks']} NaN picks"
            )
    return failures


def _telemetry(runs: list[dict[str, Any]], failures: list[str]) -> list[str]:
    ours = [r for r in runs if r["method"] == OURS and r.get("telemetry")]
    lines = [""]
    if ours:
        seconds = sum(r["telemetry"]["suggest_seconds_total"] for r in ours)
        count = sum(r["telemetry"]["suggestions"] for r in ours)
        lines.append(
            f"{OURS}: {len(ours)} runs, {sum(r['telemetry']['fallback_count'] for r in ours)} "
            f"random fallbacks, {sum(r['telemetry']['nan_picks'] for r in ours)} NaN picks, "
            f"mean {1000 * seconds / max(1, count):.0f} ms per suggestion (refits included)"
        )
    walls = {}
    for run in runs:
        walls.setdefault(run["method"], []).append(run["seconds"])
    lines.append(
        "Mean wall time per run (s): "
        + ", ".join(f"{m} {mean(walls[m]):.1f}" for m in METHODS if m in walls)
    )
    if failures:
        lines += ["", f"FAILED: {len(failures)} openamt runs fell back to random:"]
        lines += [f"- {f}" for f in failures]
    return lines
