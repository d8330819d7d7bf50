"""The ``brain_voxels`` preparation stage (registration to MNI152 + node/edge sampling), time per patient.

Default :class:`~gliotype.prepare.brain_voxels.BrainVoxelsConfig` (ANTs SyN, 1000 voxels per region and
pathway, 456 tube pathways), one worker, ANTs with ITK's default thread count (all cores). A warm-up
stage run on the first patient pays the one-off costs (imports, template, AAL, pathways and the sample
position table); then every timed run builds one patient into a new, empty cache folder: the ``small``
cohort's 4 patients once each, the ``full`` cohort's single patient 3 times. Two rows come from the same
runs: the registration alone (``ants.registration`` plus the Dice check, timed inside the stage) and the
whole stage (reading the images, registration, warping 4 sequences and FA, sampling, tumour points,
writing the cache file).
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

from _harness import Case, Context, Row, make_row
from bench_cohort import cohort_fixture

CASES = [Case("prepare-brain_voxels", "small"), Case("prepare-brain_voxels", "full", quick=False)]


def run(case: Case, ctx: Context) -> list[Row]:
    from gliotype.cohort import Cohort
    from gliotype.prepare import brain_voxels as bv
    from gliotype.prepare import load_prepared, run_stage

    cohort = Cohort.from_folder(cohort_fixture(ctx.work, case.size))
    ids, config = cohort.patient_ids, bv.BrainVoxelsConfig()
    register, reg_times = bv.register, []

    def timed_register(*args, **kwargs):
        t0 = time.perf_counter()
        try:
            return register(*args, **kwargs)
        finally:
            reg_times.append(time.perf_counter() - t0)

    bv.register = timed_register  # this process only: the harness runs each case in a fresh one
    order = ids if len(ids) > 1 else ids * 3
    stage_times, dice = [], []
    with tempfile.TemporaryDirectory(dir=ctx.work) as caches:
        for i, pid in enumerate([ids[0], *order]):
            t0 = time.perf_counter()
            result = run_stage("brain_voxels", cohort, [pid], config, cache_dir=Path(caches) / str(i))
            elapsed = time.perf_counter() - t0
            if result.failed or result.built != 1:
                raise RuntimeError(f"brain_voxels failed for {pid}: {result.failed}")
            if i:  # run 0 is the warm-up
                stage_times.append(elapsed)
                dice.append(load_prepared(result.done[pid])[1]["dice"])
    reg_times = reg_times[1:]
    n = len(stage_times)
    common = dict(per="patient", items=1, unit="patients/s", size=f"{case.size} ({len(ids)} pt)",
                  warmup="1 stage run")
    what = f"{len(ids)} patient{'s' if len(ids) > 1 else ''} x {n // len(ids)}, new cache each run, 1 worker"
    return [make_row(case, reg_times, bench="prepare-brain_voxels-register",
                     note=f"ants.registration {config.transform} + Dice, inside the stage; Dice "
                          f"{min(dice):.3f}-{max(dice):.3f}; {what}", **common),
            make_row(case, stage_times, note=f"whole stage, {config.n_voxels} voxels/region, {what}", **common)]
