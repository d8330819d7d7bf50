"""Shared benchmark machinery: cases, targets, timing, result rows, and the per-case child process.

A benchmark module (``benchmarks/bench_*.py``, listed in ``run.py``'s ``REGISTRY``) exposes ``CASES``, a
list of :class:`Case`, and ``run(case, ctx) -> list[Row]``. It imports its heavy dependencies inside
``run`` so that ``run.py`` can read ``CASES`` cheaply. ``run.py`` measures each case in a fresh process::

    python benchmarks/_harness.py MODULE "NAME:SIZE" --work DIR --result FILE [--quick]

which calls ``run`` and adds the process's peak RSS (``getrusage(RUSAGE_SELF).ru_maxrss``, KiB on Linux)
to every row, so that a row's memory is its own and not that of the cases measured before it.
"""

from __future__ import annotations

import argparse
import importlib
import json
import operator
import resource
import statistics
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

_OPS = {"<=": operator.le, ">=": operator.ge}


@dataclass(frozen=True)
class Target:
    """A goal for a row, e.g. ``Target("<= 0.1 s/patient", (("time_s", "<=", 0.1),))``.

    ``limits`` are ``(Row field, "<=" or ">=", value)``; the row meets the target when all hold.
    """

    text: str
    limits: tuple[tuple[str, str, float], ...]

    def met(self, row: Row) -> bool | None:
        values = [getattr(row, name) for name, _, _ in self.limits]
        if any(v is None for v in values):
            return None
        return all(_OPS[op](v, limit) for v, (_, op, limit) in zip(values, self.limits))


@dataclass(frozen=True)
class Case:
    """One measured process: a benchmark ``name`` at one ``size`` (``params`` are for the module)."""

    name: str
    size: str
    quick: bool = True
    target: Target | None = None
    params: Mapping[str, Any] = field(default_factory=dict)
    timeout_s: int = 600

    @property
    def key(self) -> str:
        return f"{self.name}:{self.size}"


@dataclass
class Context:
    """What a case gets besides itself: quick mode, and a work folder shared by the cases of one run."""

    quick: bool
    work: Path

    def repeats(self, full: int = 3, quick: int = 1) -> int:
        """Timed runs: ``full`` (at least 3) in a full run, ``quick`` in a quick one."""
        return quick if self.quick else max(3, full)


@dataclass
class Row:
    """One line of the table; ``time_s`` is the median time per ``per`` (a patient, a step, ...)."""

    bench: str
    size: str
    time_s: float | None = None
    per: str = ""
    throughput: float | None = None
    unit: str = ""
    runs: int = 0
    warmup: str = "1 run"
    peak_rss_mb: float | None = None
    target: str = ""
    met: bool | None = None
    note: str = ""
    error: str = ""
    times_s: list[float] = field(default_factory=list)


def measure(fn: Callable, repeats: int, warmup: bool = True, setup: Callable | None = None) -> list[float]:
    """Wall times of ``repeats`` calls of ``fn`` after one untimed warm-up call.

    ``setup``, when given, runs untimed before every call (the warm-up's too) and its value is passed to ``fn``.
    """
    def once() -> float:
        arg = setup() if setup else None
        t0 = time.perf_counter()
        fn(arg) if setup else fn()
        return time.perf_counter() - t0

    if warmup:
        once()
    return [once() for _ in range(repeats)]


def make_row(case: Case, times: list[float], *, per: str, per_run: int = 1, items: float, unit: str,
             bench: str | None = None, size: str | None = None, **extra) -> Row:
    """A row from run times: ``per_run`` units of ``per`` and ``items`` of ``unit`` are done by one run."""
    median = statistics.median(times)
    return Row(bench or case.name, size or case.size, median / per_run, per, items / median, unit,
               len(times), times_s=[round(t, 6) for t in times], **extra)


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far, MB (10^6 bytes)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / 1e6


def check_coverage(module: str, registry: str, registered, listed, fix: str) -> None:
    """Raise a ValueError naming what ``registry`` holds that ``module`` benches nowhere, and what it lists
    that is no longer registered; ``fix`` says where to add or remove a name."""
    missing, unknown = sorted(set(registered) - set(listed)), sorted(set(listed) - set(registered))
    if missing or unknown:
        raise ValueError(f"{module} is out of date with {registry}: registered but benched nowhere {missing}, "
                         f"benched but not registered {unknown}; {fix}")


def find_case(module, key: str) -> Case:
    cases = {c.key: c for c in module.CASES}
    if key not in cases:
        raise SystemExit(f"{module.__name__} has no case {key!r}; its cases: {sorted(cases)}")
    return cases[key]


def child_main() -> None:
    """Measure one case in this (fresh) process and write its rows as JSON."""
    parser = argparse.ArgumentParser(description="measure one benchmark case (run by run.py)")
    parser.add_argument("module")
    parser.add_argument("case", help="NAME:SIZE")
    parser.add_argument("--work", type=Path, required=True)
    parser.add_argument("--result", type=Path, required=True)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    module = importlib.import_module(args.module)
    case = find_case(module, args.case)
    rows = module.run(case, Context(args.quick, args.work))
    rss = peak_rss_mb()
    for row in rows:
        row.peak_rss_mb = rss
        if case.target is not None and not row.target:
            row.target, row.met = case.target.text, case.target.met(row)
    args.result.write_text(json.dumps([asdict(r) for r in rows], indent=1))


if __name__ == "__main__":
    import _harness  # the module itself, so that benchmark modules and this entry share one Row class

    _harness.child_main()
