"""The ``brain_voxels`` preparation stage (registration to MNI152 + node/edge sampling), time per patient.

Default :class:`~gliotype.prepare.brain_voxels.BrainVoxelsConfig` (ANTs SyN, 1000 voxels per region and
pathway, 456 tube pathways), one worker, ANTs with ITK's default thread count (all cores). A warm-up
stage run on the first patient pays the one-off costs (imports, template, AAL, pathways and the sample
position table); then every timed run builds one patient into a new, empty cache folder: the ``small``
cohort's 4 patients once each, the ``full`` cohort's single patient 3 times. Two rows come from the same
runs: the registration alone (``ants.registration`` plus the Dice check, timed inside the stage) and the
whole stage (reading the images, registration, warping 4 sequences and FA, sampling, tumour points,
writing the cache file). A third row is the network generation of one patient from its cached samples: the
frozen generator (paper widths, 4000-d inputs, untrained weights: the cost does not depend on them) turning
90 node and E pathway vectors into 16-d attributes.
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
    stage_times, dice, samples = [], [], []
    with tempfile.TemporaryDirectory(dir=ctx.work) as caches:
        for i, pid in enumerate([ids[0], *order]):
            t0 = time.perf_counter()
            result = run_stage("brain_voxels", cohort, [pid], config, cache_dir=Path(caches) / str(i))
            elapsed = time.perf_counter() - t0
            if result.failed or result.built != 1:
                raise RuntimeError(f"brain_voxels failed for {pid}: {result.failed}")
            if i:  # run 0 is the warm-up
                stage_times.append(elapsed)
                arrays, meta = load_prepared(result.done[pid])
                dice.append(meta["dice"])
                samples.append(arrays)
    reg_times = reg_times[1:]
    gen_times = _generation_times(samples)
    n = len(stage_times)
    common = dict(per="patient", items=1, unit="patients/s", size=f"{case.size} ({len(ids)} pt)",
                  warmup="1 stage run")
    what = f"{len(ids)} patient{'s' if len(ids) > 1 else ''} x {n // len(ids)}, new cache each run, 1 worker"
    return [make_row(case, reg_times, bench="prepare-brain_voxels-register",
                     note=f"ants.registration {config.transform} + Dice, inside the stage; Dice "
                          f"{min(dice):.3f}-{max(dice):.3f}; {what}", **common),
            make_row(case, stage_times, note=f"whole stage, {config.n_voxels} voxels/region, {what}", **common),
            make_row(case, gen_times, bench="brain_network-generate",
                     note=f"frozen generator (paper widths) on {samples[0]['edges'].shape[0]} pathways + 90 regions, "
                          "torch default threads", **common)]


def _generation_times(samples: list[dict]) -> list[float]:
    import torch

    from gliotype.nn.netgen import Generator, GeneratorConfig

    first = samples[0]
    fa_dim = first["edges_fa"].shape[1] if "edges_fa" in first else None
    generator = Generator.from_config(GeneratorConfig(), first["nodes"].shape[1], first["edges"].shape[1], fa_dim).eval()
    generator(first["nodes"], first["edges"])  # warm-up
    times = []
    for arrays in samples:
        t0 = time.perf_counter()
        with torch.no_grad():
            generator(arrays["nodes"], arrays["edges"])
        times.append(time.perf_counter() - t0)
    return times
