"""Every registered preparation stage that no other module benches, time per patient (``prepare-<stage>``).

Each run builds every patient of the synthetic cohort (MRI, FA, DSC perfusion and histology ROIs, the
default of :func:`gliotype.cohort.synth.synthesize`) into a new, empty cache folder (nothing is skipped),
one worker, the stage's default configuration. ``small``: the 4-patient cohort; ``full``: one BraTS-size
patient (240 x 240 x 155 MRI, DSC 120 x 120 x 78), for the MRI stages only (about a second a patient).

The stages other modules bench are listed in :data:`ELSEWHERE`. A stage registered in
``gliotype.prepare.STAGES`` that is in neither list, or a listed one that is no longer registered, fails
every case of this module with a message naming it, so that no stage goes unbenched silently.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from _harness import Case, Context, Row, check_coverage, make_row, measure
from bench_cohort import cohort_fixture

ELSEWHERE = {"tumour_image": "bench_prepare", "tumour_geometry": "bench_geometry",
             "brain_voxels": "bench_brainnet_prepare", "stain_patches": "bench_wsi_rna"}
"""Registered stages benched by another module (that module's name)."""
STAGES = {"histology_tiles": ("small",), "perfusion_input": ("small", "full")}
"""The stages benched here and their cohort sizes (``full``: MRI stages not benched at full size elsewhere)."""
CASES = [Case(f"prepare-{stage}", size, quick=size == "small", params={"stage": stage})
         for stage, sizes in STAGES.items() for size in sizes]


def run(case: Case, ctx: Context) -> list[Row]:
    from gliotype.cohort import Cohort
    from gliotype.prepare import STAGES as REGISTERED
    from gliotype.prepare import run_stage

    check_coverage("bench_stages", "gliotype.prepare.STAGES", REGISTERED, [*STAGES, *ELSEWHERE],
                   "add a new stage to STAGES in benchmarks/bench_stages.py (or to ELSEWHERE if a module of "
                   "its own benches it), remove a gone one")
    stage = REGISTERED[case.params["stage"]]
    cohort = Cohort.from_folder(cohort_fixture(ctx.work, case.size))
    ids = cohort.patient_ids
    lacking = {pid: why for pid in ids if (why := _lacks(stage, cohort[pid]))}
    if lacking:
        return [Row(case.name, case.size, error=f"the synthetic cohort cannot feed {stage.name}: {lacking}")]
    caches = tempfile.TemporaryDirectory(dir=ctx.work)

    def prepare(cache: Path) -> None:
        result = run_stage(stage.name, cohort, ids, cache_dir=cache)
        if result.failed or result.built != len(ids):
            raise RuntimeError(f"{stage.name} built {result.built} of {len(ids)} patients: {result.failed}")

    runs = ctx.repeats(3 if case.size == "full" else 5, quick=3)
    with caches:
        times = measure(prepare, runs, setup=lambda: Path(tempfile.mkdtemp(dir=caches.name)))
    n = len(ids)
    note = (f"{n} patient{'s' if n > 1 else ''} per run, new cache each run, 1 worker, default config; "
            f"needs {'+'.join(stage.needs)}")
    return [make_row(case, times, per="patient", per_run=n, items=n, unit="patients/s",
                     size=f"{case.size} ({n} pt)", note=note)]


def _lacks(stage, case) -> str:
    """Why a patient cannot feed ``stage`` (a missing modality), or ``""``."""
    from gliotype.cohort.layout import expand

    wanted = expand(tuple(m for m in stage.needs if m != "histology"))
    absent = sorted(m for m in wanted if m not in case.images)
    if "histology" in stage.needs and not case.histology:
        absent.append("histology")
    return f"no {', '.join(absent)}" if absent else ""
