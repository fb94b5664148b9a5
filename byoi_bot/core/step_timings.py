"""When each install step ends, learned from what polls see (no I/O, safe across threads).

A deployment read at step i, e seconds into its install, says something of every step: the
steps before i had ended by e; step i and those after it had not. So every reading teaches
every step, not only the one under way, and a deployment read rarely (its steps jumped
between two reads) still teaches the steps it jumped.

Each deployment counts once per step, by its tightest readings (its latest "not yet", its
earliest "ended"), so a server read often counts no more than any other. A step's end is
put where the fewest of them disagree: the cut between "not yet" and "ended" that leaves
the fewest readings on the wrong side, midway between the two readings around it. A few
slow or fast servers do not move it; readings just before and just after it narrow it, and
a planner that reads deployments just after their expected end makes exactly those (each
poll halves the doubt, like a bisection). The first step no deployment was seen past yet is
assumed to end `EXPLORE` seconds after its latest "not yet": optimism that gets the leading
deployments read, each read moving the guess on, until one is seen past it (the steps after
it are not guessed).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable

EXPLORE = 20.0  # seconds after its latest "not yet" that a step never seen ended is guessed to end


def position(progress: dict | None) -> tuple[int, float, int] | None:
    """(index of the step under way, elapsed seconds, how many steps) of a stored progress
    record; None when it has no steps or no elapsed time."""
    steps = (progress or {}).get("steps") or []
    elapsed = (progress or {}).get("elapsed_seconds")
    if not steps or elapsed is None:
        return None
    for statuses in (("error",), ("doing",), ("todo", "pending", "idle")):
        for index, step in enumerate(steps):
            if step.get("status") in statuses:
                return index, float(elapsed), len(steps)
    return len(steps), float(elapsed), len(steps)


class StepTimings:
    """Elapsed seconds at which each step typically ends, from the tightest readings of the
    last `keep` deployments read at each step: per deployment, its latest "not yet" and its
    earliest "ended" (so a server read often, say one running late, counts once, like any)."""

    def __init__(self, keep: int = 300, explore: float = EXPLORE) -> None:
        self.keep = keep
        self.explore = explore
        # step -> deployment -> its latest "not yet" / its earliest "ended" (elapsed seconds)
        self._before: dict[int, OrderedDict[str, float]] = {}
        self._after: dict[int, OrderedDict[str, float]] = {}
        self._ends: dict[int, float | None] = {}  # step -> its end, until the next reading
        self._lock = threading.Lock()

    def seen(self, deployment: str, index: int, elapsed: float, steps: int) -> None:
        """`deployment`, of `steps` steps, was read at step `index`, `elapsed` s into its
        install."""
        with self._lock:
            for step in range(steps):
                if step < index:
                    self._note(self._after, step, deployment, elapsed, min)
                else:
                    self._note(self._before, step, deployment, elapsed, max)
            self._ends.clear()

    def end_of(self, index: int) -> float | None:
        """Elapsed seconds when step `index` typically ends (None: never read at or past it,
        or a step after the first one never seen ended)."""
        with self._lock:
            if index not in self._ends:
                before = list(self._before.get(index, {}).values())
                after = list(self._after.get(index, {}).values())
                if not after and index and not self._after.get(index - 1):
                    self._ends[index] = None  # only the first unexplored step is guessed
                else:
                    self._ends[index] = self._estimate(before, after)
            return self._ends[index]

    def _note(
        self,
        readings: dict[int, OrderedDict[str, float]],
        step: int,
        deployment: str,
        elapsed: float,
        tighter: Callable[[float, float], float],
    ) -> None:
        by_deployment = readings.setdefault(step, OrderedDict())
        old = by_deployment.pop(deployment, None)
        by_deployment[deployment] = elapsed if old is None else tighter(old, elapsed)
        if len(by_deployment) > self.keep:
            by_deployment.popitem(last=False)  # the deployment read least recently

    def _estimate(self, before: list[float], after: list[float]) -> float | None:
        if not after:
            return max(before) + self.explore if before else None
        points = sorted([(e, -1) for e in before] + [(e, +1) for e in after])
        wrong = best = len(before)  # a cut below every reading: every "not yet" is wrong
        cut = 0
        for k, (_, change) in enumerate(points, start=1):
            wrong += change
            if wrong < best:
                best, cut = wrong, k
        lower = points[cut - 1][0] if cut else 0.0
        upper = points[cut][0] if cut < len(points) else lower + self.explore
        return (lower + upper) / 2
