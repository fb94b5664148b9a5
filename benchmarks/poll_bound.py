"""How fast could ANY poller show step changes on this budget? An upper bound, to judge
`poll_budget.py`'s figures against what is possible rather than only against round-robin.

The scenario is `poll_budget.py`'s (its `PROFILE`, N deployments starting evenly over
`--spread` seconds), and every step change's time is known in advance: a clairvoyant
scheduler. Time is cut into `--bucket`-second buckets; `x[d, b]` says whether deployment `d`
is polled in bucket `b`, `y[c]` whether change `c` is shown within `D` seconds. The linear
program (scipy's HiGHS) maximises the share of changes shown within `D`, subject to

- at most `--budget` polls in any 60 s of consecutive buckets (OVHcloud's fair use);
- change `c` of deployment `d` at time `t` is shown only by a poll of `d` in a bucket that
  meets `[t, t + D]`.

Every schedule the real bot could run is a solution (it also spends calls on task reads and
its polls take time, which are left out), and the LP relaxes 0/1 to fractions: so the optimum
is an upper bound. Where it is below 50 %, no poller can have a median delay within `D`.
With `--median`, `median >` is the largest such `D` found (bisection to `--tolerance`
seconds; a dozen linear programs, minutes each at 1,000 deployments).

Run: `python benchmarks/poll_bound.py [--deployments 100,1000] [--budget 60] [--within 20,40]`.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from benchlib import machine, parse_args, table
from poll_budget import ENDS, start_times, workload_arguments
from scipy.optimize import linprog
from scipy.sparse import coo_matrix

WINDOW = 60.0  # seconds over which the budget counts


def shown_within(n: int, within: float, *, budget: int, spread: float, bucket: float) -> float:
    """The most any schedule of `budget` polls per minute can show, of the step changes of `n`
    deployments, within `within` seconds (an upper bound, as a share of all changes)."""
    starts = start_times(n, spread)
    horizon = spread + ENDS[-1] + within + bucket
    buckets = int(np.ceil(horizon / bucket))
    per_window = round(WINDOW / bucket)
    changes = [(d, start + end) for d, start in enumerate(starts) for end in ENDS]
    x_count = n * buckets
    rows, cols, values, upper = [], [], [], []
    for c, (d, at) in enumerate(changes):  # y[c] − Σ x[d, b meeting [at, at + within]] ≤ 0
        first, last = int(at // bucket), min(int((at + within) // bucket), buckets - 1)
        rows += [c] * (last - first + 2)
        cols += [x_count + c, *(d * buckets + b for b in range(first, last + 1))]
        values += [1.0] + [-1.0] * (last - first + 1)
        upper.append(0.0)
    row = len(changes)
    for begin in range(buckets - per_window + 1):  # Σ polls in 60 s of buckets ≤ budget
        span = range(begin, begin + per_window)
        cols += [d * buckets + b for d in range(n) for b in span]
        rows += [row] * (n * per_window)
        values += [1.0] * (n * per_window)
        upper.append(float(budget))
        row += 1
    a = coo_matrix((values, (rows, cols)), shape=(row, x_count + len(changes))).tocsr()
    cost = np.concatenate([np.zeros(x_count), -np.ones(len(changes))])
    result = linprog(cost, A_ub=a, b_ub=np.array(upper), bounds=(0, 1), method="highs")
    if result.status != 0:
        raise SystemExit(f"the linear program did not solve: {result.message}")
    return -result.fun / len(changes)


def median_above(n: int, *, tolerance: float, **scenario: float) -> float:
    """A delay D (within `tolerance` s of the largest such) within which no schedule shows
    half the changes: every poller's median delay is longer."""
    low, high = 0.0, 60.0
    while shown_within(n, high, **scenario) < 0.5:
        low, high = high, high * 2
    while high - low > tolerance:
        middle = (low + high) / 2
        low, high = (middle, high) if shown_within(n, middle, **scenario) < 0.5 else (low, middle)
    return low


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    workload_arguments(parser)
    parser.add_argument("--within", default="20,40,80,160,320", help="delays D, seconds")
    parser.add_argument("--bucket", type=float, default=5.0, help="seconds; divides 60")
    parser.add_argument("--median", action="store_true", help="also bisect for `median >`")
    parser.add_argument("--tolerance", type=float, default=10.0, help="of `median >`, seconds")
    args = parse_args(parser, deployments="5", within="20", median=True, tolerance=30.0)
    scenario = {"budget": args.budget, "spread": args.spread, "bucket": args.bucket}
    within = [float(w) for w in args.within.split(",")]
    rows = []
    for n in (int(x) for x in args.deployments.split(",")):
        began = time.perf_counter()
        shares = [shown_within(n, w, **scenario) for w in within]
        floor = (
            f"{median_above(n, tolerance=args.tolerance, **scenario):.0f}" if args.median else "-"
        )
        wall = time.perf_counter() - began
        rows.append([n, *(f"{s:.1%}" for s in shares), floor, f"{wall:.0f}"])
    headers = ["deployments", *(f"shown ≤ {w:g} s" for w in within), "median > s", "wall s"]
    print(f"Upper bound, budget {args.budget}/min, {args.bucket:g}-s buckets (scipy HiGHS):")
    print(table(headers, rows))
    print(machine())


if __name__ == "__main__":
    main()
