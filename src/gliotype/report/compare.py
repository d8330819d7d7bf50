"""Comparison of several runs: metrics side by side and paired AUC tests against the first run."""

from __future__ import annotations

import logging
from html import escape

from gliotype.evaluate.metrics import metric_names
from gliotype.evaluate.paired import paired_auc_test
from gliotype.report.html import fmt, fmt_ci, table

logger = logging.getLogger(__name__)


def side_by_side(runs) -> str:
    """Every metric of every run as ``value [ci_low, ci_high]``, one column per run."""
    names = [n for n in metric_names(ordinal=True) if any(n in (r.metrics.get("metrics") or {}) for r in runs)]
    header = ["metric"] + [escape(r.name) for r in runs]
    rows = [
        ["method"] + [escape(r.method) for r in runs],
        ["target"] + [escape(r.target) for r in runs],
        ["n"] + [fmt(r.metrics.get("n")) for r in runs],
    ]
    rows += [[escape(n)] + [fmt_ci((r.metrics.get("metrics") or {}).get(n)) for r in runs] for n in names]
    return table(header, rows)


def paired_tests(runs, n_boot: int = 1000, seed: int = 0) -> list[dict]:
    """Paired AUC test of each later run against the first, or the reason it was not run."""
    results = []
    for run in runs[1:]:
        try:
            test = paired_auc_test(run.predictions, runs[0].predictions, n_boot=n_boot, seed=seed)
            results.append({"run": run.name, **test})
        except ValueError as err:
            logger.info("no paired test of %s against %s: %s", run.name, runs[0].name, err)
            results.append({"run": run.name, "reason": str(err)})
    return results


def paired_table(runs, results: list[dict], n_boot: int, seed: int) -> str:
    """The paired tests as a table; ``diff = AUC(run) - AUC(first run)``."""
    rows = []
    for r in results:
        if "reason" in r:
            rows.append(
                [escape(r["run"]), *["n/a"] * 6, f"<span class='note'>not tested: {escape(r['reason'])}</span>"]
            )
        else:
            rows.append(
                [
                    escape(r["run"]),
                    fmt(r["auc_a"]),
                    fmt(r["auc_b"]),
                    fmt(r["diff"]),
                    f"[{fmt(r['ci_low'])}, {fmt(r['ci_high'])}]",
                    fmt(r["p_value"], 4),
                    str(r["n"]),
                    "",
                ]
            )
    header = [
        "run",
        "AUC (run)",
        f"AUC ({escape(runs[0].name)})",
        "difference",
        "95% CI",
        "p (two-sided)",
        "shared n",
        "note",
    ]
    caption = (
        "<p class='muted'>Paired stratified bootstrap on the shared labelled patients "
        f"({n_boot} resamples, seed {seed}); p from the bootstrap distribution of the difference.</p>"
    )
    return table(header, rows) + caption
