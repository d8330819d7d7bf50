"""Synthetic cohort generation, time per patient: ``gliotype.cohort.synth.synthesize``.

``small``: 4 patients per run (2 mm MNI grid); ``full``: 1 patient (BraTS 240 x 240 x 155, 1 mm), measured
once because one run takes 20-40 s. Both warm up on one small patient, which also pays the one-off template
load (``bench_synth.py`` reports that load separately). The last run's cohort stays in the run's work
folder, where :func:`cohort_fixture` finds it for the benchmarks that read a cohort.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from _harness import Case, Context, Row, make_row, measure

PATIENTS = {"small": 4, "full": 1}
CASES = [Case("synth", "small"), Case("synth", "full", quick=False)]


def cohort_dir(work: Path, size: str) -> Path:
    return work / f"cohort-{size}-{PATIENTS[size]}"


def cohort_fixture(work: Path, size: str) -> Path:
    """The run's synthetic cohort of ``size``, written by a separate process if the synth case has not.

    A separate process keeps synthesis out of the caller's peak RSS.
    """
    out = cohort_dir(work, size)
    if not (out / "synth.json").is_file():  # written last: its presence means a complete cohort
        code = ("import sys; from gliotype.cohort.synth import synthesize; "
                "synthesize(sys.argv[1], n_patients=int(sys.argv[2]), seed=0, size=sys.argv[3])")
        subprocess.run([sys.executable, "-c", code, str(out), str(PATIENTS[size]), size], check=True)
    return out


def run(case: Case, ctx: Context) -> list[Row]:
    from gliotype.cohort.synth import synthesize

    n = PATIENTS[case.size]
    out = cohort_dir(ctx.work, case.size)
    with tempfile.TemporaryDirectory() as tmp:
        synthesize(tmp, n_patients=1, seed=0, size="small")  # warm-up: imports, caches, page cache
    runs = 1 if case.size == "full" else ctx.repeats(3)
    times = measure(lambda _: synthesize(out, n_patients=n, seed=0, size=case.size), runs,
                    warmup=False, setup=lambda: shutil.rmtree(out, ignore_errors=True))
    note = f"{n} patient{'s' if n > 1 else ''} per run"
    if runs == 1:
        note += "; measured once"
    return [make_row(case, times, per="patient", per_run=n, items=n, unit="patients/s",
                     size=f"{case.size} ({n} pt)", warmup="1 small patient", note=note)]
