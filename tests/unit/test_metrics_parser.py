"""Incremental, partial-line-tolerant metric parsing (definitions are checked by the spec:
test_bad_input.py)."""

from __future__ import annotations

import math
import time

from hypothesis import given
from hypothesis import strategies as st

from orchestrator.spec import MetricDefinition
from orchestrator.trial.metrics import MetricParser

ACCURACY = MetricDefinition.model_validate(
    {"Name": "Validation-accuracy", "Regex": r"validation: accuracy=([0-9\.]+)"}
)
LOSS = MetricDefinition.model_validate({"Name": "train-loss", "Regex": r"train: loss=(\S+)"})

LOG = (
    "starting up\n"
    "[Epoch 1] train: loss=0.9 validation: accuracy=0.5\n"
    "validation accuracy 0.99 (near miss)\n"
    "validation: accuracy=not-a-number\n"
    "\ufffd\ufffd garbage \x00 bytes\n"
    "[Epoch 2] train: loss=0.4\n"
    "[Epoch 2] validation: accuracy=0.75\n"
)
EXPECTED = [
    ("Validation-accuracy", 0.5),  # within a line, in the order of the definitions
    ("train-loss", 0.9),
    ("train-loss", 0.4),
    ("Validation-accuracy", 0.75),
]


def parse_all(chunks: list[str]) -> list[tuple[str, float]]:
    parser = MetricParser(definitions=[ACCURACY, LOSS])
    found: list[tuple[str, float]] = []
    for chunk in chunks:
        found += parser.feed(chunk)
    return found + parser.finish()


def test_whole_log_yields_matches_in_order_and_skips_garbage() -> None:
    assert parse_all([LOG]) == EXPECTED


def test_every_split_point_gives_the_same_matches() -> None:
    for cut in range(len(LOG) + 1):
        assert parse_all([LOG[:cut], LOG[cut:]]) == EXPECTED, f"cut at {cut}"


@given(st.lists(st.integers(min_value=0, max_value=len(LOG)), max_size=12))
def test_any_chunking_gives_the_same_matches(cuts: list[int]) -> None:
    bounds = [0, *sorted(cuts), len(LOG)]
    chunks = [LOG[a:b] for a, b in zip(bounds, bounds[1:], strict=False)]
    assert parse_all(chunks) == EXPECTED


def test_one_character_at_a_time() -> None:
    assert parse_all(list(LOG)) == EXPECTED


def test_partial_line_waits_for_its_end() -> None:
    parser = MetricParser(definitions=[ACCURACY])
    assert parser.feed("validation: accuracy=0.1") == []  # could still become 0.12
    assert parser.feed("2\n") == [("Validation-accuracy", 0.12)]


def test_finish_flushes_an_unterminated_last_line_once() -> None:
    parser = MetricParser(definitions=[ACCURACY])
    assert parser.feed("validation: accuracy=0.9") == []
    assert parser.finish() == [("Validation-accuracy", 0.9)]
    assert parser.finish() == []


def test_carriage_returns_end_lines_like_newlines() -> None:
    text = "validation: accuracy=0.1\rvalidation: accuracy=0.2\r\nvalidation: accuracy=0.3\n"
    assert [value for _, value in parse_all([text])] == [0.1, 0.2, 0.3]


def test_crlf_split_between_chunks() -> None:
    assert [v for _, v in parse_all(["validation: accuracy=0.1\r", "\nx\n"])] == [0.1]


def test_all_definitions_apply_to_the_same_line_in_definition_order() -> None:
    parser = MetricParser(definitions=[LOSS, ACCURACY])
    line = "[Epoch 1] validation: accuracy=0.5 train: loss=0.9\n"
    assert parser.feed(line) == [("train-loss", 0.9), ("Validation-accuracy", 0.5)]


def test_nan_and_inf_are_numbers_for_the_caller_to_judge() -> None:
    found = parse_all(["train: loss=nan\ntrain: loss=inf\ntrain: loss=1e-3\n"])
    values = [value for _, value in found]
    assert math.isnan(values[0])
    assert values[1:] == [math.inf, 1e-3]


def test_an_optional_group_that_did_not_participate_is_ignored() -> None:
    definition = MetricDefinition(Name="m", Regex=r"m(?:=([0-9]+))?")
    parser = MetricParser(definitions=[definition])
    assert parser.feed("m\nm=3\n") == [("m", 3.0)]


def test_an_endless_line_is_matched_and_not_buffered_forever() -> None:
    parser = MetricParser(definitions=[ACCURACY], max_line_chars=100)
    assert parser.feed("x" * 150 + " validation: accuracy=0.4") == [("Validation-accuracy", 0.4)]
    assert parser.finish() == []


def test_hundred_thousand_lines_parse_quickly() -> None:
    import time

    text = "".join(
        f"[Epoch {i}] train: loss=0.{i % 97} validation: accuracy=0.{i % 89}\n"
        for i in range(100_000)
    )
    started = time.perf_counter()
    found = parse_all([text[i : i + 65536] for i in range(0, len(text), 65536)])
    assert len(found) == 200_000
    assert time.perf_counter() - started < 5.0


SLOW = MetricDefinition(Name="slow", Regex=r"(a|aa)+$")
BACKTRACKING_LINE = "a" * 60 + "b\n"


def test_a_regex_that_backtracks_is_skipped_per_line_then_dropped_with_a_warning() -> None:
    parser = MetricParser(definitions=[SLOW, ACCURACY])
    started = time.perf_counter()
    found = parser.feed(BACKTRACKING_LINE * 10 + "validation: accuracy=0.5\n")
    assert found == [("Validation-accuracy", 0.5)]  # the other metric is unaffected
    assert time.perf_counter() - started < 20  # three timeouts, not ten (or an hour)
    warnings = parser.take_warnings()
    assert len(warnings) == 3 and "no longer applied in this trial" in warnings[-1]
    assert parser.feed(BACKTRACKING_LINE) == [] and parser.take_warnings() == []


def test_the_sample_log_check_reports_a_regex_that_backtracks(tmp_path) -> None:
    from orchestrator.spec import validate_sample_log
    from tests.helpers import standin_spec

    spec = standin_spec(
        tmp_path, metric_definitions=[{"Name": "validation:accuracy", "Regex": r"(a|aa)+$"}]
    )
    problems = [str(p) for p in validate_sample_log(spec, BACKTRACKING_LINE)]
    assert any("takes over 50 ms on line 1 of the log" in p for p in problems), problems
