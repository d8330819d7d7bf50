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


@app.callback()
def main(verbose: Annotated[bool, typer.Option("--verbose", "-v", help="log what the library does")] = False):
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s")


@command
def synth(
    out_dir: Annotated[Path, typer.Argument(metavar="OUT", help="folder to write the cohort into")],
    patients: Annotated[int, typer.Option(min=1, help="number of patients")] = 40,
    seed: Annotated[int, typer.Option(help="random seed; the same seed gives byte-identical files")] = 0,
    size: Annotated[str, typer.Option(help="small (2 mm, seconds per patient) or full (BraTS 240x240x155, 1 mm)")] = "small",
    signal: Annotated[Optional[str], typer.Option(help="per-modality signal strength, e.g. geometry=1,perfusion=0")] = None,
    timepoints: Annotated[Optional[int], typer.Option(help="DSC time points (default: 45-60 per patient)")] = None,
):
    """Write a synthetic cohort (every modality of Contract 1) with genotype effects planted per modality."""
    from gliotype.cohort.synth import parse_signal, synthesize

    if size not in ("small", "full"):
        raise typer.BadParameter(f"--size must be 'small' or 'full', not {size!r}")
    path = synthesize(out_dir, n_patients=patients, seed=seed, size=size,
                      signal=parse_signal(signal) if signal else None, n_timepoints=timepoints, progress=True)
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
