"""Computing the next suggestion while trials run, so a freed slot does not wait for the GP.

A Bayesian suggestion takes a fraction of a second to a second on a CPU core. Computed when
a slot frees, that time is lost from the slot every trial; for trials of minutes it does not
matter, for trials of a few seconds it dominates. `SuggestAhead` wraps the job's searcher:

* While suggestions are cheap next to trials (mean suggestion time below `AHEAD_THRESHOLD`
  of the mean trial time), or only one trial runs at a time, every suggestion is computed
  when asked for, with every result known by then: nothing changes.
* Otherwise, after handing out trial N it computes trial N+1's suggestion in a background
  thread, with all running trials as pending points (the searcher spreads parallel
  suggestions that way anyway). When trial N+1 is asked for, the suggestion is ready. The
  price: it does not know the result that freed the slot — the usual trade of asynchronous
  Bayesian optimisation, taken only when waiting would cost more.
* The computation waits `START_QUIET_S` first (less when the next slot is expected to free
  sooner, and not at all once trial N+1 is asked for): trial N's trainer is starting then,
  and on a machine with few cores a GP fitted at the same moment slows that start and the
  driver's bookkeeping of it. On 2 cores, with 1-s trials, starting at once cost each trial
  about 20 ms (`benchmarks/overhead.py`).

One lock serialises every call into the searcher, which is not thread-safe, but the driver's
event loop never waits for it just to record a result: while a suggestion is being computed,
`observe` queues the observation (applied before the next computation) and `state_dict`
returns the snapshot taken after the last searcher change. Such a snapshot may lack the newest
observations; the ledger has them, and `TrialPlanner.resume` replays completions the saved
searcher missed. A prefetched suggestion is pending in the searcher until it is handed out; if
the job ends first, `close()` forgets it, and after a crash `TrialPlanner.resume` forgets
pending trials the ledger never started.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from search import Searcher, SearchTelemetry
from search.hyperband import HyperbandSearcher
from search.successive_halving import Decision

#: Suggest ahead once suggestions cost more than this fraction of a trial's duration.
AHEAD_THRESHOLD = 0.02
#: Weight of the newest sample in the running means of suggestion and trial times.
SMOOTHING = 0.2
#: How long a background suggestion waits for the trial just handed out to start.
START_QUIET_S = 0.2

Config = dict[str, Any]


class SuggestAhead:
    """A searcher wrapper (the planner's `SearcherLike`) that may suggest one trial ahead."""

    def __init__(
        self,
        searcher: Searcher,
        *,
        successor: Callable[[str], str | None],
        max_parallel_jobs: int,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """`clock` times trials (from hand-out to result), which sets when to run ahead."""
        self._searcher = searcher
        self._successor = successor
        self._may_run_ahead = max_parallel_jobs > 1
        self._max_parallel_jobs = max(1, max_parallel_jobs)
        self._clock = clock
        self._lock = threading.Lock()
        self._executor: ThreadPoolExecutor | None = None
        self._ahead: tuple[str, Future[Config | None]] | None = None
        self._start_now = threading.Event()  # ends the quiet wait of the computation ahead
        self._deferred: deque[tuple[str, float | None]] = deque()  # observations to apply
        self._snapshot: dict[str, Any] = searcher.state_dict()
        self._handed_out_at: dict[str, float] = {}
        self._mean_suggest_s: float | None = None
        self._mean_trial_s: float | None = None
        self.compute_seconds: list[float] = []  # time spent computing each suggestion
        self.prefetched = 0  # suggestions handed out from a background computation

    def __getstate__(self) -> dict[str, Any]:
        """Ray pickles the search algorithm with its experiment; a copy starts idle (no lock
        held, no background work): only this driver's instance suggests."""
        return {
            **self.__dict__,
            "_lock": None,
            "_executor": None,
            "_ahead": None,
            "_start_now": None,
        }

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()
        self._start_now = threading.Event()

    # -- the searcher's interface ---------------------------------------------------------
    def suggest(self, trial_id: str) -> Config | None:
        config = self._take_ahead(trial_id)
        if config is _NOT_AHEAD:
            config = self._compute(trial_id)
        if config is not None:
            self._handed_out_at[trial_id] = self._clock()
            next_id = self._successor(trial_id)  # None: no trial will follow
            if next_id is not None and self.running_ahead:
                self._start_ahead(next_id)
        return config

    def observe(self, trial_id: str, value: float | None) -> None:
        """Record the result now, or as soon as a background computation lets go."""
        started = self._handed_out_at.pop(trial_id, None)
        if started is not None:
            self._mean_trial_s = _smoothed(self._mean_trial_s, self._clock() - started)
        self._deferred.append((trial_id, value))
        if self._lock.acquire(blocking=False):
            try:
                self._catch_up()
            finally:
                self._lock.release()

    def forget(self, trial_id: str) -> None:
        self._handed_out_at.pop(trial_id, None)
        with self._lock:
            self._catch_up()
            self._searcher.forget(trial_id)
            self._snapshot = self._searcher.state_dict()

    def adopt(self, trial_id: str, config: Config) -> None:
        with self._lock:
            self._catch_up()
            self._searcher.adopt(trial_id, config)
            self._snapshot = self._searcher.state_dict()

    def state_dict(self) -> dict[str, Any]:
        """The searcher's state now, or the last snapshot while a suggestion is computed."""
        if self._lock.acquire(blocking=False):
            try:
                self._catch_up()
            finally:
                self._lock.release()
        return self._snapshot

    @property
    def pending(self) -> Mapping[str, Config]:
        with self._lock:
            self._catch_up()
            return dict(self._searcher.pending)

    @property
    def observations(self) -> Mapping[str, tuple[Config, float | None]]:
        with self._lock:
            self._catch_up()
            return dict(self._searcher.observations)

    def report(self, trial_id: str, resource: int, value: float) -> Decision:
        """An intermediate result for Hyperband's successive halving. Its searcher takes it
        without waiting for a suggestion being computed, so neither does this."""
        if not isinstance(self._searcher, HyperbandSearcher):
            raise TypeError(f"{self._searcher.strategy.value} takes no intermediate results")
        return self._searcher.report(trial_id, resource, value)

    def telemetry(self) -> SearchTelemetry:
        """The searcher's latest counters and timings; never waits for a suggestion."""
        return self._searcher.telemetry()

    # -- running ahead ----------------------------------------------------------------------
    @property
    def running_ahead(self) -> bool:
        """Whether suggestions are computed one trial ahead (see the module docstring)."""
        if not self._may_run_ahead or self._mean_suggest_s is None or not self._mean_trial_s:
            return False
        return self._mean_suggest_s > AHEAD_THRESHOLD * self._mean_trial_s

    def settle(self) -> None:
        """Wait until a background suggestion, if one is being computed, is ready."""
        if self._ahead is not None:
            self._start_now.set()
            self._ahead[1].exception()  # waits; an error stays for the next `suggest`

    def close(self) -> None:
        """Wait for a background suggestion and forget it: no trial will use it."""
        ahead, self._ahead = self._ahead, None
        if ahead is not None:
            trial_id, future = ahead
            self._start_now.set()
            if future.result() is not None:
                self.forget(trial_id)
        if self._executor is not None:
            self._executor.shutdown(wait=True)
            self._executor = None

    def _take_ahead(self, trial_id: str) -> Config | None | object:
        """The prefetched suggestion for `trial_id`, or `_NOT_AHEAD`."""
        ahead, self._ahead = self._ahead, None
        if ahead is None:
            return _NOT_AHEAD
        ahead_id, future = ahead
        self._start_now.set()
        config = future.result()  # re-raises what the background computation raised
        if ahead_id == trial_id:
            self.prefetched += 1
            return config
        if config is not None:
            self.forget(ahead_id)
        return _NOT_AHEAD

    def _start_ahead(self, trial_id: str) -> None:
        if self._executor is None:
            self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="suggest-ahead")
        self._start_now.clear()
        quiet_s = 0.0
        if self._mean_trial_s is not None and self._mean_suggest_s is not None:
            quiet_s = quiet_before_suggesting(
                mean_trial_s=self._mean_trial_s,
                mean_suggest_s=self._mean_suggest_s,
                parallel=self._max_parallel_jobs,
            )
        self._ahead = (trial_id, self._executor.submit(self._compute_after, quiet_s, trial_id))

    def _compute_after(self, quiet_s: float, trial_id: str) -> Config | None:
        self._start_now.wait(quiet_s)
        return self._compute(trial_id)

    def _compute(self, trial_id: str) -> Config | None:
        with self._lock:
            self._catch_up()
            started = time.perf_counter()
            config = self._searcher.suggest(trial_id)
            elapsed = time.perf_counter() - started
            self._snapshot = self._searcher.state_dict()
        self.compute_seconds.append(elapsed)
        self._mean_suggest_s = _smoothed(self._mean_suggest_s, elapsed)
        return config

    def _catch_up(self) -> None:
        """Apply queued observations and refresh the snapshot; call with the lock held."""
        if not self._deferred:
            return
        while self._deferred:
            self._searcher.observe(*self._deferred.popleft())
        self._snapshot = self._searcher.state_dict()


_NOT_AHEAD = object()


def quiet_before_suggesting(*, mean_trial_s: float, mean_suggest_s: float, parallel: int) -> float:
    """`START_QUIET_S`, shortened so that the suggestion is still ready when the next slot is
    expected to free (running trials end every mean trial time / parallel trials, on average),
    with the suggestion's own mean time counted twice for safety."""
    headroom = mean_trial_s / max(1, parallel) - 2 * mean_suggest_s
    return min(START_QUIET_S, max(0.0, headroom))


def _smoothed(mean: float | None, sample: float) -> float:
    return sample if mean is None else (1 - SMOOTHING) * mean + SMOOTHING * sample
