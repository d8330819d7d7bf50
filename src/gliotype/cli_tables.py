"""Rich tables the CLI prints (kept apart from the commands so the commands stay thin)."""

from __future__ import annotations

from rich.table import Table

from gliotype.cohort import layout
from gliotype.cohort.labels import TARGETS
from gliotype.cohort.validate import ValidationReport

MAX_ROWS = 60


def validation_table(report: ValidationReport) -> Table:
    """Patients x modalities x labels: ✓ present, ✗ present but unusable, blank absent."""
    cohort = report.cohort
    table = Table(title=f"{cohort.root} — {len(cohort)} patients", show_lines=False)
    table.add_column("patient", no_wrap=True)
    for modality in layout.MODALITIES:
        table.add_column(modality, justify="center")
    for target in TARGETS:
        table.add_column(target.removeprefix("codel_"), no_wrap=True)
    table.add_column("status")
    for i, case in enumerate(cohort):
        if i == MAX_ROWS:
            table.add_row(f"... {len(cohort) - MAX_ROWS} more", *[""] * (len(layout.MODALITIES) + len(TARGETS) + 1))
            break
        bad = report.bad_modalities(case.patient_id)
        cells = ["[red]✗[/]" if m in bad and case.has(m) else ("✓" if case.has(m) else "") for m in layout.MODALITIES]
        labels = [case.label(t) or "?" for t in TARGETS]
        status = "[green]ok[/]" if not bad else ("[red]skipped[/]" if not report.usable(case.patient_id) else "[yellow]partial[/]")
        table.add_row(case.patient_id, *cells, *labels, status)
    return table
