"""``gliotype demo``: the whole flow on synthetic cohorts, sized to run in minutes on two CPU cores.

synth (training cohort + an external cohort with another seed) -> validate -> prepare -> train each
available method with few epochs (3-fold CV; hiperfgnn multi-task: IDH, 1p/19q and grade in one model) ->
evaluate the image model and hiperfgnn on the external cohort -> explain colearn's and hiperfgnn's
predictions for the first external patient, and the genes wsi-rna's patch -> RNA retrievals of that patient
lean on (brainnet trains with affine registration and small widths to stay within minutes) -> one HTML
report comparing the runs.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from gliotype.cohort import Cohort, validate
from gliotype.cohort.synth import synthesize
from gliotype.explain import explain_patient
from gliotype.report import write_report
from gliotype.train import evaluate, train
from gliotype.train.retrieval import explain_retrieval

DEMO_RUNS: list[tuple[str, str, dict]] = [
    # (method, target, method options): small cubes and few epochs so the demo stays within minutes on CPU
    ("densenet3d", "idh", {"size": 32, "spacing": 3.0, "epochs": 4, "batch_size": 4, "patience": 4}),
    ("colearn", "idh", {"size": 32, "spacing": 3.0, "epochs": 6, "batch_size": 8, "patience": 6}),
    ("brainnet", "idh", {"size": 32, "spacing": 3.0, "epochs": 6, "batch_size": 8, "patience": 6,
                         "transform": "Affine", "n_voxels": 100, "image_channels": [8, 16, 16, 32, 32],
                         "gat_channels": [32, 64, 64], "generator_epochs": 10, "generator_hidden": [256, 64, 32],
                         "generator_fa_hidden": [64, 32], "population_epochs": 100}),
    ("hiperfgnn", "idh", {"tasks": ["codel_1p19q", "grade"], "epochs": 10, "patience": 10, "hidden": 32,
                          "vqvae_epochs": 2, "vqvae_curves": 20000}),
    ("fof", "grade", {"tile_size": 64, "epochs": 6, "patience": 6, "lr": 5e-4}),
    ("concat-fusion", "grade", {"tile_size": 64, "epochs": 6, "patience": 6, "lr": 5e-4}),
    ("rnaseq-lr", "idh", {}),
    ("rnaseq-lr", "grade", {}),
    ("rnaseq", "idh", {"pretrain_epochs": 10, "epochs": 20}),
    ("wsi-rna", "lineage", {"image_size": 64, "embed": 96, "depth": 2, "epochs": 100}),
]
"""Method issues add their method here."""


def run_demo(out: str | Path, patients: int = 40, seed: int = 0, say: Callable[[str], None] = lambda _: None) -> Path:
    """Run the demo into ``out``; returns the report path. ``say`` receives one line per step."""
    out = Path(out)
    cohort_dir, external_dir = out / "cohort", out / "external"
    if not (cohort_dir / "labels.csv").is_file():
        say(f"synthesising {patients} patients into {cohort_dir}")
        synthesize(cohort_dir, n_patients=patients, seed=seed, size="small", progress=True, workers=2)
    if not (external_dir / "labels.csv").is_file():
        say(f"synthesising an external cohort of {patients // 2} patients (another seed) into {external_dir}")
        synthesize(external_dir, n_patients=patients // 2, seed=seed + 1000, size="small", progress=True, workers=2)
    report = validate(Cohort.from_folder(cohort_dir), progress=True)
    say(f"validated: {len(report.usable_ids)} of {len(report.cohort)} patients usable, {len(report.problems)} problems")
    runs = []
    for method, target, options in DEMO_RUNS:
        run = out / "runs" / f"{method}-{target}"
        say(f"training {method} for {target} (3-fold patient-level CV) -> {run}")
        runs.append(train(cohort_dir, method, target, run, folds=3, seed=seed, overrides=options, progress=True))
    for method in ("densenet3d", "hiperfgnn"):
        external = out / "runs" / f"{method}-idh-external"
        say(f"evaluating {method} on the external cohort -> {external}")
        runs.append(evaluate(out / "runs" / f"{method}-idh", external_dir, external, progress=True))
    patient = Cohort.from_folder(external_dir).patient_ids[0]
    for method, target in (("colearn", "idh"), ("hiperfgnn", "idh"), ("fof", "grade")):
        explained = explain_patient(out / "runs" / f"{method}-{target}", external_dir, patient,
                                    out / "explain" / f"{method}-{patient}", gnn_epochs=50)
        say(f"explained {method}'s {target} prediction for {patient} ({explained.summary['class_explained']}) -> "
            f"{explained.out}")
    genes = explain_retrieval(out / "runs" / "wsi-rna-lineage", external_dir, patient,
                              out / "explain" / f"wsi-rna-{patient}")
    say(f"explained wsi-rna's retrievals for {patient}: top genes {', '.join(genes['top_genes'][:5])}")
    return write_report(runs, out / "report.html")
