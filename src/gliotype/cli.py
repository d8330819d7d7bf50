"""The ``gliotype`` console script: thin commands over the public API (DESIGN.md Contract 2).

Exit status: 0 on success, 2 for a usage error, 1 for a failure with one line on stderr that names the
file or patient and what is wrong.
"""

from __future__ import annotations

import functools
import logging
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Predict glioma molecular type (IDH, 1p/19q, grade) from imaging, histology and RNA-seq.")
out = Console(width=None if sys.stdout.isatty() else 160)
err = Console(stderr=True, width=None if sys.stderr.isatty() else 200)

USER_ERRORS = (ValueError, FileNotFoundError, KeyError, PermissionError)


def command(fn):
    """Register ``fn`` as a subcommand that turns a user error into one stderr line and exit status 1."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except USER_ERRORS as e:
            message = e.args[0] if isinstance(e, KeyError) and e.args else e
            err.print(f"[red]error:[/] {message}", highlight=False, soft_wrap=True)
            raise typer.Exit(1) from None

    return app.command()(wrapper)


TRAINING_COMMANDS = {"train", "evaluate", "predict", "explain", "ablate", "demo"}


@app.callback()
def main(ctx: typer.Context,
         verbose: Annotated[bool, typer.Option("--verbose", "-v", help="log what the library does")] = False):
    level = logging.INFO if verbose else logging.WARNING
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    if ctx.invoked_subcommand in TRAINING_COMMANDS and "--help" not in sys.argv:
        # Importing Lightning sets its loggers to INFO and gives "lightning" a console handler of its own,
        # so each of its lines would print twice; import it first, then route its lines through ours.
        import lightning  # noqa: F401

        for name in ("lightning", "lightning.pytorch", "lightning.fabric"):
            logger = logging.getLogger(name)
            logger.handlers.clear()
            logger.setLevel(level)
            logger.propagate = True


@command
def synth(
    out_dir: Annotated[Path, typer.Argument(metavar="OUT", help="folder to write the cohort into")],
    patients: Annotated[int, typer.Option(min=1, help="number of patients")] = 40,
    seed: Annotated[int, typer.Option(help="random seed; the same seed gives byte-identical files")] = 0,
    size: Annotated[str, typer.Option(help="small (2 mm, seconds per patient) or full (BraTS 240x240x155, 1 mm)")] = "small",
    signal: Annotated[Optional[str], typer.Option(help="per-modality signal strength, e.g. geometry=1,perfusion=0")] = None,
    timepoints: Annotated[Optional[int], typer.Option(help="DSC time points (default: 45-60 per patient)")] = None,
    skip: Annotated[Optional[str], typer.Option(help="leave out some of fa,dsc,histology (faster; other files unchanged)")] = None,
    workers: Annotated[int, typer.Option(min=1, help="processes rendering patients in parallel")] = 1,
):
    """Write a synthetic cohort (every modality of Contract 1) with genotype effects planted per modality."""
    from gliotype.cohort.synth import parse_signal, synthesize

    if size not in ("small", "full"):
        raise typer.BadParameter(f"--size must be 'small' or 'full', not {size!r}")
    from gliotype.cohort.synth.patient import OPTIONAL

    left_out = {m.strip() for m in (skip or "").split(",") if m.strip()}
    if left_out - set(OPTIONAL):
        raise typer.BadParameter(f"--skip takes some of {', '.join(OPTIONAL)}, not {sorted(left_out - set(OPTIONAL))}")
    path = synthesize(out_dir, n_patients=patients, seed=seed, size=size,
                      signal=parse_signal(signal) if signal else None, n_timepoints=timepoints, progress=True,
                      optional=[m for m in OPTIONAL if m not in left_out], workers=workers)
    out.print(f"wrote {patients} synthetic patients to {path}")


@command
def validate(cohort: Annotated[Path, typer.Argument(metavar="COHORT")]):
    """Check a cohort: a table of patients x modalities x labels, and every problem found."""
    from gliotype.cli_tables import validation_table
    from gliotype.cohort import Cohort
    from gliotype.cohort import validate as run_validation

    report = run_validation(Cohort.from_folder(cohort), progress=True)
    out.print(validation_table(report))
    for problem in report.problems:
        err.print(f"[yellow]problem:[/] {problem}", highlight=False, soft_wrap=True)
    usable = report.usable_ids
    out.print(f"{len(usable)} of {len(report.cohort)} patients usable; {len(report.problems)} problems")
    if not usable:
        err.print(f"[red]error:[/] {cohort}: no usable patient")
        raise typer.Exit(1)


CohortArg = Annotated[Path, typer.Argument(metavar="COHORT", help="cohort folder (labels.csv + one folder per patient)")]
RunArg = Annotated[Path, typer.Argument(metavar="RUN", help="output folder of `gliotype train`")]
TargetOpt = Annotated[str, typer.Option(help="idh, codel_1p19q or grade (retrieval methods: lineage, patient)")]
CacheOpt = Annotated[Optional[Path], typer.Option("--cache", help="prepared-data cache (default COHORT/.gliotype-cache)")]
WorkersOpt = Annotated[int, typer.Option(min=1, help="worker processes for preparation")]
SchedulerOpt = Annotated[Optional[str], typer.Option(
    help="address of a Dask scheduler (tcp://HOST:8786): one task per patient on its workers; overrides --workers")]
DeviceOpt = Annotated[str, typer.Option(help="auto, cpu or cuda")]


@command
def prepare(
    cohort: CohortArg,
    cache: CacheOpt = None,
    workers: WorkersOpt = 1,
    stages: Annotated[Optional[list[str]], typer.Option("--stages", help="stage names (default: every stage)")] = None,
    methods: Annotated[Optional[list[str]], typer.Option("--method", help="prepare what these methods need")] = None,
    scheduler: SchedulerOpt = None,
):
    """Derive and cache per-patient inputs (skips what is cached; lists the patients that failed).

    With --scheduler, each patient is one task on a Dask cluster (`dask scheduler`, `dask worker ADDRESS`)
    whose workers see the cohort and the cache at the same paths; --workers is then ignored.
    """
    from gliotype.cohort import Cohort
    from gliotype.methods import create_method
    from gliotype.prepare import STAGES, get_stage, run_stage

    data = Cohort.from_folder(cohort)
    wanted = list(stages or [])
    for name in methods or []:
        wanted += list(getattr(create_method(name), "stages", ()))
    wanted = list(dict.fromkeys(wanted or STAGES))
    for name in wanted:
        stage = get_stage(name)
        ids = [c.patient_id for c in data if all(c.has(m) for m in stage.needs)]
        result = run_stage(name, data, ids, cache_dir=cache, workers=workers, progress=True, scheduler=scheduler)
        out.print(f"{name}: {len(result.done)} patients ready ({result.built} built, "
                  f"{len(result.done) - result.built} cached), {len(result.failed)} failed")
        for pid, why in result.failed.items():
            err.print(f"[yellow]skipped[/] {pid}: {why}", highlight=False, soft_wrap=True)


@command
def methods():
    """List the registered methods, the modalities they read and the targets they predict."""
    from rich.table import Table

    from gliotype.methods import list_methods

    table = Table(title="gliotype methods")
    for col in ("method", "modalities", "targets", "description"):
        table.add_column(col)
    for spec in list_methods():
        table.add_row(spec.name, ", ".join(spec.modalities), ", ".join(spec.targets), spec.description)
    out.print(table)


@command
def train(
    cohort: CohortArg,
    method: Annotated[str, typer.Option(help="a method from `gliotype methods`")],
    target: TargetOpt,
    out_dir: Annotated[Path, typer.Option("--out", help="run folder (rerun with the same folder to resume)")],
    folds: Annotated[int, typer.Option(min=1, help="patient-level stratified folds; 1 = one holdout split")] = 5,
    holdout: Annotated[Optional[float], typer.Option(help="holdout fraction instead of K-fold")] = None,
    epochs: Annotated[Optional[int], typer.Option(min=1, help="override the method's epochs")] = None,
    seed: int = 0,
    config: Annotated[Optional[Path], typer.Option(help="YAML file of method options")] = None,
    set_: Annotated[Optional[list[str]], typer.Option("--set", help="method option key=value (repeatable)")] = None,
    cache: CacheOpt = None,
    workers: WorkersOpt = 1,
    device: DeviceOpt = "auto",
    devices: Annotated[str, typer.Option(help="processes per machine for each fit (DDP): a number or auto; "
                                              "under torchrun, its --nproc_per_node")] = "1",
    num_nodes: Annotated[int, typer.Option(min=1, help="machines of a DDP fit (under torchrun, its --nnodes)")] = 1,
    strategy: Annotated[str, typer.Option(help="Lightning strategy: auto, ddp, ddp_find_unused_parameters_true ...")
                        ] = "auto",
    memory_format: Annotated[str, typer.Option(help="contiguous or channels_last_3d (3-D CNNs on CUDA)")] = "contiguous",
):
    """Cross-validate a method at the patient level; writes config.yaml, splits.csv, predictions.csv, metrics.json, model/.

    --devices N fits each fold with N processes (DDP; the method's batch_size is per process); the same run
    can be started by `torchrun --nproc_per_node N -m gliotype train ... --devices N`.
    """
    from gliotype.methods.base import Distributed
    from gliotype.train import train as run_train
    from gliotype.train.config import parse_overrides

    if devices != "auto" and not devices.isdigit():
        raise typer.BadParameter(f"--devices takes a number of processes or 'auto', not {devices!r}")
    parallel = Distributed(devices if devices == "auto" else int(devices), num_nodes, strategy)
    run = run_train(cohort, method, target, out_dir, folds=folds, holdout_fraction=holdout, epochs=epochs, seed=seed,
                    config_file=config, overrides=parse_overrides(set_ or []), cache_dir=cache, workers=workers,
                    device=device, distributed=parallel, memory_format=memory_format, progress=True)
    _print_metrics(run)


@command
def evaluate(run: RunArg, cohort: CohortArg,
             out_dir: Annotated[Path, typer.Option("--out", help="folder for predictions.csv and metrics.json")],
             cache: CacheOpt = None, workers: WorkersOpt = 1, device: DeviceOpt = "auto"):
    """Apply a trained run (its fold ensemble) to another labelled cohort."""
    from gliotype.train import evaluate as run_evaluate

    _print_metrics(run_evaluate(run, cohort, out_dir, cache_dir=cache, workers=workers, device=device, progress=True))


@command
def predict(run: RunArg, cohort: CohortArg,
            out_csv: Annotated[Path, typer.Option("--out", help="predictions CSV to write")],
            cache: CacheOpt = None, workers: WorkersOpt = 1, device: DeviceOpt = "auto"):
    """Predict the patients of a cohort (labels not needed)."""
    from gliotype.train import predict as run_predict

    frame = run_predict(run, cohort, out_csv, cache_dir=cache, workers=workers, device=device, progress=True)
    out.print(f"wrote {len(frame)} predictions to {out_csv}")


@command
def explain(run: RunArg, cohort: CohortArg,
            patient: Annotated[str, typer.Option("--patient", help="patient id to explain")],
            out_dir: Annotated[Path, typer.Option("--out", help="folder for the maps, CSVs and figures")],
            class_name: Annotated[Optional[str], typer.Option("--class", help="class to explain (default: the predicted one)")] = None,
            gnn_epochs: Annotated[int, typer.Option(min=1, help="GNNExplainer optimisation steps")] = 200,
            cache: CacheOpt = None, device: DeviceOpt = "auto"):
    """Explain one patient's prediction: Grad-CAM NIfTI, GNNExplainer point importances, habitat saliency, figures
    (a retrieval run: the patient's retrievals and the genes they lean on)."""
    from gliotype.explain import explain_patient
    from gliotype.train.apply import is_retrieval

    if is_retrieval(run):
        from gliotype.train.retrieval import explain_retrieval

        summary = explain_retrieval(run, cohort, patient, out_dir, cache_dir=cache, device=device)
        out.print(f"{patient}: {summary['n_patches']} patches x {summary['n_models']} fold models; lineage "
                  f"retrieved {summary['lineage_accuracy']:.0%}, patient {summary['patient_accuracy']:.0%}; top genes "
                  + ", ".join(summary["top_genes"][:5]))
        for kind, path in summary["files"].items():
            out.print(f"  {kind:<26} {path}")
        return

    result = explain_patient(run, cohort, patient, out_dir, class_name=class_name, gnn_epochs=gnn_epochs,
                             cache_dir=cache, device=device)
    probs = result.summary["probabilities"]["prediction"]
    out.print(f"{patient}: explained class {result.summary['class_explained']} "
              f"(p = {probs[result.summary['class_explained']]:.3f}, {result.summary['n_models']} fold models)")
    for kind, path in result.files.items():
        out.print(f"  {kind:<26} {path}")


@command
def ablate(
    cohort: CohortArg,
    method: Annotated[str, typer.Option(help="method whose variants to run (brainnet, hiperfgnn)")],
    target: TargetOpt,
    out_dir: Annotated[Path, typer.Option("--out", help="folder for one run per variant and report.html")],
    variants: Annotated[Optional[str], typer.Option(help="comma-separated variant names (default: all)")] = None,
    baselines: Annotated[Optional[str], typer.Option(help="comma-separated baseline methods ('' for none; "
                                                     "default: the paper's)")] = None,
    folds: Annotated[int, typer.Option(min=1)] = 5,
    epochs: Annotated[Optional[int], typer.Option(min=1, help="override every run's epochs")] = None,
    seed: int = 0,
    set_: Annotated[Optional[list[str]], typer.Option("--set", help="option key=value for every variant")] = None,
    baseline_set: Annotated[Optional[list[str]], typer.Option("--baseline-set", help="option key=value for the baselines")] = None,
    cache: CacheOpt = None,
    workers: WorkersOpt = 1,
    device: DeviceOpt = "auto",
):
    """Train every named variant of a method (paper ablations) and its baselines on the same splits; one report."""
    from gliotype.train.ablate import ablate as run_ablate
    from gliotype.train.config import parse_overrides

    path = run_ablate(cohort, method, target, out_dir, variants=variants.split(",") if variants else None,
                      baselines=None if baselines is None else [b for b in baselines.split(",") if b], folds=folds, seed=seed, epochs=epochs,
                      overrides=parse_overrides(set_ or []), baseline_overrides=parse_overrides(baseline_set or []),
                      cache_dir=cache, workers=workers, device=device, say=out.print)
    out.print(f"ablation report: {path}")


@command
def report(runs: Annotated[list[Path], typer.Argument(metavar="RUN...", help="run folders to report and compare")],
           out_file: Annotated[Path, typer.Option("--out", help="HTML file to write")] = Path("report.html")):
    """One self-contained HTML report: metrics with CIs, ROC/PR, calibration, confusion, comparison."""
    from gliotype.report import write_report

    out.print(f"report: {write_report(runs, out_file)}")


@command
def demo(out_dir: Annotated[Path, typer.Option("--out", help="folder for the cohort, runs and report")] = Path("demo-out"),
         patients: Annotated[int, typer.Option(min=12, help="synthetic patients")] = 40):
    """The whole flow on a synthetic cohort: synth, validate, prepare, train, evaluate, report."""
    from gliotype.demo import run_demo

    path = run_demo(out_dir, patients=patients, say=out.print)
    out.print(f"[bold green]demo finished[/]: open {path}")


def _print_metrics(run: Path) -> None:
    import json

    m = json.loads((Path(run) / "metrics.json").read_text())
    chance = m.get("chance", {})  # retrieval runs: accuracies against their chance level
    parts = [f"{k} {v['value']:.3f} [{v['ci_low']:.3f}, {v['ci_high']:.3f}]"
             + (f" (chance {chance[k]:.3f})" if k in chance else "") for k, v in m["metrics"].items()
             if k in ("auc", "balanced_accuracy", "accuracy", *chance) and v["value"] is not None]
    out.print(f"{m['method']} / {m['target']} (n={m['n']}): " + "; ".join(parts))
    out.print(f"outputs in {run}")
