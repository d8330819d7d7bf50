"""Ablations: train a method's named variants (and baselines) with the same splits, then one comparison report.

Each variant is a run folder ``OUT/<variant>`` made by :func:`gliotype.train.train` with the variant's
method options (the ``VARIANTS`` of the method's module, e.g. :data:`gliotype.methods.brainnet.VARIANTS`); every run uses the same seed and
folds, so the splits are identical and the report's paired AUC tests compare like with like. Runs that
already finished are reused (a rerun resumes an interrupted ablation).
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from gliotype.methods.registry import get_spec

from gliotype.report import write_report
from gliotype.train.runner import train

BASELINES = {"brainnet": ("densenet3d", "resnet3d"), "hiperfgnn": ("perfgat", "gliomt"),
             "fof": ("vit", "kd", "concat-fusion", "kronecker-fusion")}
"""Each method's baselines in its paper: the 3-D CNNs of paper 001, PerfGAT and GlioMT of paper 002, the ViT,
distillation and fusion models of paper 004."""


def variants_of(method: str) -> dict[str, dict]:
    """The named configurations of a method (its module's ``VARIANTS``; empty if it has none)."""
    module = sys.modules[get_spec(method).factory.__module__]
    return getattr(module, "VARIANTS", {})


def ablate(cohort: str | Path, method: str, target: str, out: str | Path, *, variants: Sequence[str] | None = None,
           baselines: Sequence[str] | None = None, folds: int = 5, seed: int = 0, epochs: int | None = None,
           overrides: dict | None = None, baseline_overrides: dict | None = None, cache_dir: Path | None = None,
           workers: int = 1, device: str = "auto", say: Callable[[str], None] = lambda _: None) -> Path:
    """Train ``variants`` of ``method`` (default: all) and ``baselines`` (default: its paper's); returns the
    report path.

    Args:
        overrides: method options applied to every variant (e.g. small cubes), before the variant's own.
        baseline_overrides: method options of the baselines (e.g. ``size`` and ``spacing``).
    """
    known = variants_of(method)
    names = list(variants) if variants else list(known)
    unknown = [v for v in names if v not in known]
    if unknown:
        raise ValueError(f"unknown {method} variant(s) {unknown}; known: {list(known)}")
    out = Path(out)
    runs = []
    jobs = [(f"{method}-{v}", method, {**(overrides or {}), **known[v]}) for v in names]
    baselines = BASELINES.get(method, ()) if baselines is None else baselines
    jobs += [(b, b, dict(baseline_overrides or {})) for b in baselines]
    for name, meth, options in jobs:
        run = out / name
        if (run / "metrics.json").is_file():
            say(f"{name}: done earlier, reused")
        else:
            say(f"{name}: training -> {run}")
            train(cohort, meth, target, run, folds=folds, seed=seed, epochs=epochs, overrides=options,
                  cache_dir=cache_dir, workers=workers, device=device)
        runs.append(run)
    return write_report(runs, out / "report.html", title=f"{method} ablations ({target})")
