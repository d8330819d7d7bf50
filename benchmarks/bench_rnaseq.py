"""``rnaseq-lr`` fit, seconds per cross-validation fold, on 200 patients x 1544 genes.

Uses the TCGA table of ``/work/shared/data/tcga-rnaseq`` (IDH labels; patients without one are left out)
when it exists, else random data of the same shape. One run fits the 5 folds of a stratified 5-fold
split through ``method.fit``, with the patient profiles as ``prepare`` gives them (one Series each).
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from _harness import Case, Context, Row, make_row, measure

DATA = Path("/work/shared/data/tcga-rnaseq")
FOLDS = 5
CASES = [Case("rnaseq-lr-fit", "200x1544")]


def load_table():
    """(profiles: patients x genes DataFrame, labels: 0/1 array, source) from TCGA or random data."""
    import numpy as np
    import pandas as pd

    if (DATA / "rnaseq.tsv").is_file() and (DATA / "labels.csv").is_file():
        x = pd.read_csv(DATA / "rnaseq.tsv", sep="\t", index_col="patient_id")
        idh = pd.read_csv(DATA / "labels.csv", index_col="patient")["IDH.status"].dropna()
        x = x.loc[x.index.intersection(idh.index)]
        return x, (idh.loc[x.index] == "Mutant").to_numpy(int), "TCGA table, IDH"
    rng = np.random.default_rng(0)
    x = pd.DataFrame(rng.standard_normal((200, 1544)), columns=[f"G{i}" for i in range(1544)])
    return x, (rng.random(200) < 0.7).astype(int), "random data"


def run(case: Case, ctx: Context) -> list[Row]:
    return [fold_fit_row(case, ctx, "rnaseq-lr", ctx.repeats(5, quick=3))]


def fold_fit_row(case: Case, ctx: Context, method_name: str, repeats: int) -> Row:
    """Seconds per cross-validation fold of ``method_name``'s ``fit`` on the table of :func:`load_table`."""
    from sklearn.model_selection import StratifiedKFold

    from gliotype.methods import FitContext, create_method

    x, y, source = load_table()
    profiles = [row for _, row in x.iterrows()]
    folds = list(StratifiedKFold(FOLDS, shuffle=True, random_state=0).split(x, y))
    method = create_method(method_name)

    def fit_all(work: str) -> None:
        for train, _ in folds:
            method.fit([profiles[i] for i in train], y[train], [], y[:0], 2, FitContext(Path(work)))

    with tempfile.TemporaryDirectory(dir=ctx.work) as work:
        times = measure(lambda: fit_all(work), repeats)
    n_train = sum(len(train) for train, _ in folds)
    return make_row(case, times, per="fold", per_run=FOLDS, items=n_train, unit="train patients/s",
                    size=f"{x.shape[0]}x{x.shape[1]}", note=f"{source}; {FOLDS} fold fits per run, default config")
