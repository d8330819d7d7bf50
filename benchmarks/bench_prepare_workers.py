"""``gliotype prepare --workers 1`` against ``--workers 2``: the same patients, the same stages, new caches.

The cohort is 40 synthetic patients (``full``: BraTS 240 x 240 x 155 at 1 mm, MRI only; ``small``: 2 mm
MNI grid), written once into the run's work folder by two synthesis processes. Each timed run prepares
every patient with the MRI methods' per-patient stages (``tumour_image`` then ``tumour_geometry``) into a
new, empty cache, as ``gliotype prepare COHORT --stages ... --workers N`` does. Runs alternate between one
and two workers, so a change of load hits both. Issue 9's target: two workers take at most 0.6 of the
time of one.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from _harness import Case, Context, Row, make_row

PATIENTS = 40
STAGES = ("tumour_image", "tumour_geometry")
CASES = [Case("prepare-workers", "small", quick=False),
         Case("prepare-workers", "full", quick=False, timeout_s=3600)]
TARGET_RATIO = 0.6


def cohort(work: Path, size: str) -> Path:
    """The run's 40-patient cohort of ``size``, synthesized in a separate process on first use."""
    out = work / f"cohort-{size}-{PATIENTS}-mri"
    if not (out / "synth.json").is_file():  # written last: its presence means a complete cohort
        code = ("import sys; from gliotype.cohort.synth import synthesize; "
                "synthesize(sys.argv[1], n_patients=int(sys.argv[2]), seed=0, size=sys.argv[3], optional=(), workers=2)")
        subprocess.run([sys.executable, "-c", code, str(out), str(PATIENTS), size], check=True)
    return out


def run(case: Case, ctx: Context) -> list[Row]:
    import time

    from gliotype.cohort import Cohort
    from gliotype.prepare import run_stage

    data = Cohort.from_folder(cohort(ctx.work, case.size))
    ids = data.patient_ids
    caches = tempfile.TemporaryDirectory(dir=ctx.work)

    def prepare(workers: int) -> float:
        cache = Path(tempfile.mkdtemp(dir=caches.name))
        t0 = time.perf_counter()
        for stage in STAGES:
            result = run_stage(stage, data, ids, cache_dir=cache, workers=workers)
            if result.failed or result.built != len(ids):
                raise RuntimeError(f"{stage} built {result.built} of {len(ids)} patients: {result.failed}")
        return time.perf_counter() - t0

    times: dict[int, list[float]] = {1: [], 2: []}
    with caches:
        prepare(2)  # warm-up: imports, the page cache of the cohort's files
        for _ in range(ctx.repeats(3)):
            for workers in (1, 2):
                times[workers].append(prepare(workers))
    n = len(ids)
    rows = [make_row(case, times[w], per="patient", per_run=n, items=n, unit="patients/s",
                     bench=f"prepare --workers {w}", size=f"{case.size} ({n} pt)",
                     note=f"stages {' + '.join(STAGES)}, new cache each run") for w in (1, 2)]
    ratio = statistics.median(times[2]) / statistics.median(times[1])
    rows[1].target, rows[1].met = f"<= {TARGET_RATIO} x the time of --workers 1", ratio <= TARGET_RATIO
    rows[1].note += f"; time ratio to --workers 1: {ratio:.2f}"
    return rows
