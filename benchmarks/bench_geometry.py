"""The ``tumour_geometry`` preparation stage, time per patient on one core, on the synthetic cohort of each size.

Each run builds every patient of the cohort into a new, empty cache folder (nothing is skipped), one worker,
``torch.set_num_threads(1)``, default :class:`~gliotype.prepare.tumour_geometry.TumourGeometryConfig` (core
region, 512 points from the mesh vertices). The time includes reading the segmentation NIfTI.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from _harness import Case, Context, Row, Target, make_row, measure
from bench_cohort import cohort_fixture

CASES = [
    Case("prepare-tumour_geometry", "small"),
    Case("prepare-tumour_geometry", "full", quick=False,
         target=Target("< 2 s/patient on one core", (("time_s", "<=", 2.0),))),
]


def run(case: Case, ctx: Context) -> list[Row]:
    import torch

    from gliotype.cohort import Cohort
    from gliotype.prepare import load_prepared, run_stage
    from gliotype.prepare.tumour_geometry import TumourGeometryConfig

    torch.set_num_threads(1)
    cohort = Cohort.from_folder(cohort_fixture(ctx.work, case.size))
    ids, config = cohort.patient_ids, TumourGeometryConfig()
    caches = tempfile.TemporaryDirectory(dir=ctx.work)
    done = {}

    def prepare(cache: Path) -> None:
        result = run_stage("tumour_geometry", cohort, ids, config, cache_dir=cache)
        if result.failed or result.built != len(ids):
            raise RuntimeError(f"tumour_geometry built {result.built} of {len(ids)} patients: {result.failed}")
        done.update(result.done)

    with caches:
        times = measure(prepare, ctx.repeats(5, quick=3), setup=lambda: Path(tempfile.mkdtemp(dir=caches.name)))
        vertices = [load_prepared(p)[1]["n_vertices"] for p in done.values()]
    n = len(ids)
    return [make_row(case, times, per="patient", per_run=n, items=n, unit="patients/s",
                     size=f"{case.size} ({n} pt)",
                     note=f"{n} patient{'s' if n > 1 else ''} per run, new cache each run, 1 worker, 1 torch thread, "
                          f"{config.n_points} pts from {config.sampling} ({min(vertices)}-{max(vertices)} vertices)")]
