"""HTML fragments of the report: page frame, tables and the per-run sections. All text is escaped."""

from __future__ import annotations

import json
import math
from html import escape

import pandas as pd
import yaml

STYLE = """
body{font-family:system-ui,-apple-system,'Segoe UI',sans-serif;margin:2em auto;max-width:1150px;color:#222}
h1{font-size:1.6em}h2{border-bottom:2px solid #ccc;padding-bottom:.2em;margin-top:2em}h3{margin-top:1.4em}
table{border-collapse:collapse;margin:.6em 0}th,td{border:1px solid #ccc;padding:.25em .6em;text-align:right}
th{background:#f3f3f3}td.l,th.l{text-align:left}.note{color:#8a5a00}.muted{color:#777}
.figs{display:flex;flex-wrap:wrap;gap:1em}.figs img{border:1px solid #eee;max-width:100%}
pre{background:#f7f7f7;padding:.6em;overflow:auto;font-size:.85em}
"""

# Marks every figure with its decoded width once the page has loaded (checked by the browser test).
SCRIPT = """
window.addEventListener('load', function () {
  var imgs = document.querySelectorAll('img'), ok = 0;
  imgs.forEach(function (img) {
    img.setAttribute('data-natural-width', img.naturalWidth);
    if (img.naturalWidth > 0) ok++;
  });
  document.body.setAttribute('data-images-loaded', ok + '/' + imgs.length);
});
"""


def fmt(value, digits: int = 3) -> str:
    """A number for a table cell; ``n/a`` for a missing or undefined value."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    if isinstance(value, (int,)) and not isinstance(value, bool):
        return str(value)
    return f"{float(value):.{digits}f}"


def fmt_ci(entry: dict | None) -> str:
    """``value [ci_low, ci_high]`` of a metrics.json entry."""
    if not entry:
        return "n/a"
    return f"{fmt(entry.get('value'))} [{fmt(entry.get('ci_low'))}, {fmt(entry.get('ci_high'))}]"


def table(header: list[str] | None, rows: list[list[str]], left_columns: int = 1) -> str:
    """An HTML table of already-escaped cells; the first ``left_columns`` are left-aligned."""

    def cls(i):
        return ' class="l"' if i < left_columns else ""

    head = (
        "<thead><tr>" + "".join(f"<th{cls(i)}>{h}</th>" for i, h in enumerate(header)) + "</tr></thead>"
        if header
        else ""
    )
    body = "".join("<tr>" + "".join(f"<td{cls(i)}>{c}</td>" for i, c in enumerate(r)) + "</tr>" for r in rows)
    return f"<table>{head}<tbody>{body}</tbody></table>"


def page(title: str, body: str) -> str:
    """The whole self-contained document."""
    return (
        f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{escape(title)}</title>'
        f"<style>{STYLE}</style></head>\n<body>\n<h1>{escape(title)}</h1>\n{body}\n<script>{SCRIPT}</script>\n</body></html>\n"
    )


def metrics_table(metrics: dict) -> str:
    """Value and CI of every metric, with the per-fold mean and SD where recorded."""
    ci = metrics.get("ci", {})
    folds = metrics.get("per_fold_summary") or {}
    header = ["metric", "value", "CI low", "CI high"] + (["fold mean ± SD"] if folds else [])
    rows = []
    for name, entry in (metrics.get("metrics") or {}).items():
        row = [escape(name), fmt(entry.get("value")), fmt(entry.get("ci_low")), fmt(entry.get("ci_high"))]
        if folds:
            f = folds.get(name) or {}
            row.append(f"{fmt(f.get('mean'))} ± {fmt(f.get('sd'))}")
        rows.append(row)
    setting = {
        k: escape(str(ci.get(k, "not recorded"))) for k in ("method", "n_boot", "unit", "stratified", "level", "seed")
    }
    caption = (
        f"<p class='muted'>{setting['method']} bootstrap, {setting['n_boot']} resamples of {setting['unit']}s, "
        f"stratified: {setting['stratified']}, level {setting['level']}, seed {setting['seed']}.</p>"
    )
    return table(header, rows) + caption


def heads_table(metrics: dict) -> str:
    """AUC, accuracy and balanced accuracy (with CIs) of each head of a multi-head method, if recorded."""
    heads = metrics.get("heads") or {}
    if not heads:
        return ""
    names = ("auc", "accuracy", "balanced_accuracy")
    rows = [[escape(h)] + [fmt_ci(m.get(n)) for n in names] for h, m in heads.items()]
    return ("<h3>Heads</h3><p class='muted'>Each head's own out-of-fold predictions (head_predictions.csv); "
            "the method's prediction above is their mean.</p>" + table(["head", *names], rows))


def cohort_summary(run) -> str:
    """Cohort, labels, modalities, skipped patients and split counts of a run."""
    m = run.metrics
    parts = [
        table(
            None,
            [
                ["method", escape(run.method)],
                ["target", escape(run.target)],
                ["classes", escape(", ".join(run.classes))],
                ["labelled patients (n)", fmt(m.get("n"))],
                ["unlabelled patients", fmt(m.get("n_unlabelled"))],
                ["class counts", escape(json.dumps(m.get("class_counts", "not recorded")))],
            ],
            left_columns=2,
        )
    ]
    parts.append(_cohort_json(run.cohort))
    parts.append(_splits(run.splits))
    if run.config is not None:
        dumped = yaml.safe_dump(run.config, sort_keys=False)
        parts.append(f"<details><summary>config.yaml</summary><pre>{escape(dumped)}</pre></details>")
    else:
        parts.append("<p class='muted'>config.yaml: not recorded.</p>")
    return "\n".join(parts)


def _cohort_json(cohort: dict | None) -> str:
    if cohort is None:
        return "<p class='muted'>Cohort (cohort.json): not recorded.</p>"
    rows = [
        ["cohort", escape(str(cohort.get("cohort", "not recorded")))],
        ["patients", escape(str(cohort.get("n_patients", "not recorded")))],
        ["class counts", escape(json.dumps(cohort.get("class_counts", "not recorded")))],
    ]
    modalities = cohort.get("modalities") or {}
    rows += [[f"modality {escape(str(k))}", f"{escape(str(v))} patients"] for k, v in modalities.items()]
    out = "<h4>Cohort (cohort.json)</h4>" + table(None, rows, left_columns=2)
    skipped = cohort.get("skipped") or []
    if skipped:
        out += f"<p>Skipped patients ({len(skipped)}):</p>" + table(
            ["patient", "reason"],
            [[escape(str(s.get("patient_id"))), escape(str(s.get("reason")))] for s in skipped],
            2,
        )
    else:
        out += "<p class='muted'>No patient skipped.</p>"
    return out


def _splits(splits: pd.DataFrame | None) -> str:
    if splits is None:
        return "<p class='muted'>Splits (splits.csv): not recorded.</p>"
    if not {"fold", "role"} <= set(splits.columns):
        return f"<p class='note'>splits.csv lacks fold/role columns (has {escape(str(list(splits.columns)))}).</p>"
    counts = pd.crosstab(splits["fold"], splits["role"])
    rows = [[escape(str(f))] + [str(int(v)) for v in counts.loc[f]] for f in counts.index]
    return "<h4>Splits (patients per fold and role)</h4>" + table(
        ["fold"] + [escape(str(c)) for c in counts.columns], rows
    )


def figures(images: dict[str, str]) -> str:
    """A row of embedded PNG figures, ``{alt text: data URI}``."""
    tags = "".join(f'<img src="{uri}" alt="{escape(alt)}" title="{escape(alt)}">' for alt, uri in images.items())
    return f"<div class='figs'>{tags}</div>"
