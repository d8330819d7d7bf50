"""The ``tumour_image`` preparation stage, time per patient, on the synthetic cohort of each size.

Each run builds every patient of the cohort into a new, empty cache folder (nothing is skipped), one
worker, default :class:`~gliotype.prepare.tumour_image.TumourImageConfig` (64^3 cube at 2 mm).
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from _harness import Case, Context, Row, make_row, measure
from bench_cohort import cohort_fixture

CASES = [Case("prepare-tumour_image", "small"), Case("prepare-tumour_image", "full", quick=False)]


def run(case: Case, ctx: Context) -> list[Row]:
    from gliotype.cohort import Cohort
    from gliotype.prepare import run_stage
    from gliotype.prepare.tumour_image import TumourImageConfig

    cohort = Cohort.from_folder(cohort_fixture(ctx.work, case.size))
    ids, config = cohort.patient_ids, TumourImageConfig()
    caches = tempfile.TemporaryDirectory(dir=ctx.work)

    def prepare(cache: Path) -> None:
        result = run_stage("tumour_image", cohort, ids, config, cache_dir=cache)
        if result.failed or result.built != len(ids):
            raise RuntimeError(f"tumour_image built {result.built} of {len(ids)} patients: {result.failed}")

    with caches:
        times = measure(prepare, ctx.repeats(5, quick=3), setup=lambda: Path(tempfile.mkdtemp(dir=caches.name)))
    n = len(ids)
    return [make_row(case, times, per="patient", per_run=n, items=n, unit="patients/s",
                     size=f"{case.size} ({n} pt)",
                     note=f"{n} patient{'s' if n > 1 else ''} per run, new cache each run, 1 worker, "
                          f"{config.size}^3 at {config.spacing:g} mm")]

