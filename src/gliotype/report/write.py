"""``write_report``: one self-contained HTML file for one or more runs."""

from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import Sequence
from html import escape
from pathlib import Path

from gliotype.report import figures as fig
from gliotype.report.compare import paired_table, paired_tests, side_by_side
from gliotype.report.html import cohort_summary, figures, heads_table, metrics_table, page
from gliotype.report.retrieval import is_retrieval_run, retrieval_section
from gliotype.report.runs import RunRecord, load_run, unique_names

logger = logging.getLogger(__name__)
FIGURES_PER_RUN = 4


def run_section(index: int, run: RunRecord) -> str:
    """Cohort summary, metrics table and the four figures of one run."""
    images = {
        f"{run.name}: ROC": fig.roc_figure(run.y, run.prob, run.classes),
        f"{run.name}: precision-recall": fig.pr_figure(run.y, run.prob, run.classes),
        f"{run.name}: calibration": fig.reliability_figure(run.y, run.prob),
        f"{run.name}: confusion matrix": fig.confusion_figure(run.y, run.prob, run.classes),
    }
    notes = "".join(f"<p class='note'>{escape(n)}</p>" for n in run.notes)
    return (
        f"<section id='run-{index}'><h2>{index}. {escape(run.name)}</h2>"
        f"<p class='muted'>{escape(str(run.path))}</p>{notes}"
        f"<h3>Run and cohort</h3>{cohort_summary(run)}<h3>Metrics</h3>{metrics_table(run.metrics)}"
        f"{heads_table(run.metrics)}"
        f"<h3>Figures</h3>{figures(images)}</section>"
    )


def comparison_section(runs: list[RunRecord], n_boot: int, seed: int) -> str:
    """Side-by-side metrics, an AUC forest plot and paired tests against the first run."""
    forest = fig.forest_figure([r.name for r in runs], [r.metrics for r in runs], "auc")
    tests = paired_tests(runs, n_boot=n_boot, seed=seed)
    return (
        "<section id='comparison'><h2>Comparison</h2>"
        + side_by_side(runs)
        + figures({"AUC of each run with its CI": forest})
        + f"<h3>Paired AUC test against {escape(runs[0].name)}</h3>"
        + paired_table(runs, tests, n_boot, seed)
        + "</section>"
    )


def atomic_write_text(path: Path, text: str) -> None:
    """Write ``text`` to a temporary file beside ``path``, then rename it over ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_report(
    runs: Sequence[Path], out: Path, *, n_boot: int = 1000, seed: int = 0, title: str | None = None
) -> Path:
    """Write one self-contained HTML report (figures embedded as PNG, no external resources).

    Per run: cohort summary, metrics with confidence intervals, ROC and precision-recall curves
    (one-vs-rest per class for multi-class), reliability curve and confusion matrix. With several runs:
    a comparison table, an AUC forest plot and a paired AUC test of each run against the first where
    they share at least 10 labelled patients and the target. A retrieval run (``retrievals.csv``) gets its
    accuracies against chance and its top genes.

    Args:
        runs: Run folders, each with ``predictions.csv`` and optionally ``metrics.json``,
            ``config.yaml``, ``splits.csv``, ``cohort.json``.
        out: The HTML file to write.
        n_boot: Resamples of the paired tests.
        seed: Seed of the paired tests.
        title: Page title; default "gliotype report".

    Returns:
        ``out`` as a Path.

    Raises:
        ValueError: If ``runs`` is empty.
        FileNotFoundError: If a run folder or its ``predictions.csv`` is missing.
    """
    paths = [Path(r) for r in runs]
    if not paths:
        raise ValueError("write_report needs at least one run folder, got none")
    names = dict(zip(paths, unique_names(paths), strict=True))
    records = [load_run(p, names[p]) for p in paths if not is_retrieval_run(p)]
    body = [run_section(i + 1, r) for i, r in enumerate(records)]
    body += [retrieval_section(len(body) + i + 1, p, names[p]) for i, p in enumerate(filter(is_retrieval_run, paths))]
    if len(records) > 1:
        body.insert(0, comparison_section(records, n_boot, seed))
    out = Path(out)
    atomic_write_text(out, page(title or "gliotype report", "\n".join(body)))
    logger.info("report of %d run(s) written to %s", len(records), out)
    return out
