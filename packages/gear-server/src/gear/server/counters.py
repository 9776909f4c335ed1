"""Job counters and duration histograms for the metrics endpoint: plain data, no I/O.

The engine adds to these only when metrics are on (``job_counters`` is not
None, and each ``FunctionQueue.stats`` points at its record), with an
integer increment per event and a bisect per finished job: the
exposition, the cumulative buckets and the label strings are computed when
``/metrics`` is scraped, not when a job moves. Queue depths, running jobs
and workers are not counted here at all; a scrape reads them from the
engine's own tables.

Label cardinality is bounded: the first ``max_functions`` function names
seen get their own counters, every later name adds to one shared
:data:`OTHER` record, so a peer that invents names cannot grow this
without bound.
"""

from __future__ import annotations

from bisect import bisect_left

__all__ = [
    "COMMIT_BUCKETS",
    "DURATION_BUCKETS",
    "FINISHED_OUTCOMES",
    "KIND_BACKGROUND",
    "KIND_FOREGROUND",
    "KIND_SCHEDULED",
    "OTHER",
    "OUTCOME_COMPLETE",
    "OUTCOME_EXCEPTION",
    "OUTCOME_FAIL",
    "SUBMIT_KINDS",
    "FunctionCounts",
    "Histogram",
    "JobCounters",
]

OTHER = b"__other__"

KIND_FOREGROUND = 0
KIND_BACKGROUND = 1
KIND_SCHEDULED = 2
SUBMIT_KINDS = ("foreground", "background", "scheduled")

OUTCOME_COMPLETE = 0
OUTCOME_FAIL = 1
OUTCOME_EXCEPTION = 2
FINISHED_OUTCOMES = ("complete", "fail", "exception")

#: Upper bounds (seconds) of the job duration buckets: milliseconds to an hour.
DURATION_BUCKETS = (
    0.001,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
    60.0,
    300.0,
    900.0,
    3600.0,
)
#: Upper bounds (seconds) of the store commit buckets.
COMMIT_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0)


class Histogram:
    """Observations per bucket (not cumulative: the scrape adds them up) and their sum."""

    __slots__ = ("bounds", "counts", "total")

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)  # the last one is +Inf
        self.total = 0.0

    def observe(self, value: float) -> None:
        self.counts[bisect_left(self.bounds, value)] += 1
        self.total += value

    def cumulative(self) -> list[tuple[str, int]]:
        """``(le, count)`` pairs as the Prometheus format wants them, ending with +Inf."""
        pairs: list[tuple[str, int]] = []
        running = 0
        for bound, count in zip((*map(str, self.bounds), "+Inf"), self.counts, strict=True):
            running += count
            pairs.append((bound, running))
        return pairs


class FunctionCounts:
    """Submitted jobs by kind, finished jobs by outcome and their durations, for one label.

    The engine holds a reference in ``FunctionQueue.stats`` and adds to
    ``submitted`` itself: the cost of a job is an increment at submit and
    one call of :meth:`ended`.
    """

    __slots__ = ("duration", "finished", "submitted")

    def __init__(self) -> None:
        self.submitted = [0, 0, 0]
        self.finished = [0, 0, 0]
        self.duration = Histogram(DURATION_BUCKETS)

    def ended(self, outcome: int, seconds: float) -> None:
        """A job ended with ``outcome`` after ``seconds`` (negative: it never ran)."""
        self.finished[outcome] += 1
        if seconds >= 0.0:
            duration = self.duration
            duration.counts[bisect_left(duration.bounds, seconds)] += 1
            duration.total += seconds


class JobCounters:
    """Every counter of one server, keyed by function name (bytes)."""

    def __init__(self, max_functions: int) -> None:
        self.max_functions = max_functions
        self.functions: dict[bytes, FunctionCounts] = {}
        self.other = FunctionCounts()
        self.commits = Histogram(COMMIT_BUCKETS)

    def counts(self, name: bytes) -> FunctionCounts:
        """The record ``name`` counts into: its own while there is room, else the shared one."""
        found = self.functions.get(name)
        if found is None:
            if len(self.functions) >= self.max_functions:
                return self.other
            found = self.functions[name] = FunctionCounts()
        return found

    def label(self, name: bytes) -> bytes:
        """The ``function`` label of ``name``: itself, or :data:`OTHER` past the limit."""
        return name if self.counts(name) is not self.other else OTHER

    def committed(self, seconds: float) -> None:
        self.commits.observe(seconds)
