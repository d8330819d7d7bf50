"""``rnaseq-lr`` and ``rnaseq`` fit, seconds per cross-validation fold, on 200 patients x 1544 genes.

Uses the TCGA table of ``/work/shared/data/tcga-rnaseq`` (IDH labels; patients without one are left out)
when it exists, else random data of the same shape. One run fits the 5 folds of a stratified 5-fold
split through ``method.fit``, with the patient profiles as ``prepare`` gives them (one Series each), each
fold in a new work folder (a torch method's fit resumes from what it finds there).

``rnaseq-fit``: paper 003's gene-token encoder (``pretrain_epochs`` 20 + ``epochs`` 20 by default), 1 torch
thread, its 7 PPI tokens built once, untimed, from the STRING edges of ``/work/shared/data/ppi`` (what its
``prepare`` sets); skipped, with a note, when the TCGA table or the STRING file is absent.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from _harness import Case, Context, Row, make_row, measure

DATA = Path("/work/shared/data/tcga-rnaseq")
PPI = Path("/work/shared/data/ppi/string_v12_edges.csv.gz")
FOLDS = 5
CASES = [Case("rnaseq-lr-fit", "200x1544"), Case("rnaseq-fit", "200x1544", quick=False, timeout_s=900)]


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
    if case.name == "rnaseq-fit":
        return [rnaseq_row(case, ctx)]
    return [fold_fit_row(case, ctx, "rnaseq-lr", ctx.repeats(5, quick=3))]


def rnaseq_row(case: Case, ctx: Context) -> Row:
    """``rnaseq``'s fold fit, its tokens from STRING over the table's genes (skipped without the data)."""
    import torch

    absent = [str(p) for p in (DATA / "rnaseq.tsv", PPI) if not p.is_file()]
    if absent:
        return Row(case.name, case.size, note=f"skipped: {', '.join(absent)} absent (rnaseq groups the TCGA "
                                               "genes by STRING communities)")
    torch.set_num_threads(1)

    def tokens(method, genes: list[str]) -> str:
        method.tokens, source = method.build_tokens(None, genes)  # ppi= is given: the cohort is not read
        return f"tokens from {source} built once untimed: {method.tokens.summary()}; 1 torch thread"

    return fold_fit_row(case, ctx, "rnaseq", ctx.repeats(3, quick=1), options={"ppi": str(PPI)}, setup=tokens)


def fold_fit_row(case: Case, ctx: Context, method_name: str, repeats: int, options: dict | None = None,
                 setup=None) -> Row:
    """Seconds per cross-validation fold of ``method_name``'s ``fit`` on the table of :func:`load_table`.

    ``options``: the method's configuration (``create_method(method_name, **options)``); ``setup(method, genes)``:
    what the method's ``prepare`` would set, run once, untimed, before the fits; it returns a note.
    """
    from sklearn.model_selection import StratifiedKFold

    from gliotype.methods import FitContext, create_method

    x, y, source = load_table()
    profiles = [row for _, row in x.iterrows()]
    folds = list(StratifiedKFold(FOLDS, shuffle=True, random_state=0).split(x, y))
    method = create_method(method_name, **(options or {}))
    extra = setup(method, list(x.columns)) if setup else ""

    def fit_all(run_dir: Path) -> None:
        for k, (train, _) in enumerate(folds):
            method.fit([profiles[i] for i in train], y[train], [], y[:0], 2, FitContext(run_dir / f"fold-{k}"))

    with tempfile.TemporaryDirectory(dir=ctx.work) as work:
        times = measure(fit_all, repeats, setup=lambda: Path(tempfile.mkdtemp(dir=work)))
    n_train = sum(len(train) for train, _ in folds)
    config = f"config {options}" if options else "default config"
    return make_row(case, times, per="fold", per_run=FOLDS, items=n_train, unit="train patients/s",
                    size=f"{x.shape[0]}x{x.shape[1]}",
                    note=f"{source}; {FOLDS} fold fits per run, new work folders, {config}"
                    + (f"; {extra}" if extra else ""))
