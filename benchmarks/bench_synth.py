"""Time and peak memory of synthesising one patient, at both sizes.

Usage: ``python benchmarks/bench_synth.py [--small N] [--full N]``. Each size runs in a fresh
subprocess so its peak RSS (``resource.getrusage``, ru_maxrss) is its own; the first patient of a
run also pays the one-off template load, reported separately.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile

_CHILD = """
import json, resource, sys, tempfile, time
from gliotype.cohort.synth import synthesize
from gliotype.cohort.synth.anatomy import load_template, location_candidates
size, n = sys.argv[1], int(sys.argv[2])
t = time.perf_counter(); load_template(); location_candidates(); setup = time.perf_counter() - t
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
with tempfile.TemporaryDirectory() as out:
    t = time.perf_counter(); synthesize(out, n_patients=n, seed=0, size=size); total = time.perf_counter() - t
    import pathlib
    disk = sum(p.stat().st_size for p in pathlib.Path(out).rglob("*") if p.is_file())
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"size": size, "patients": n, "setup_s": setup, "s_per_patient": total / n,
                  "peak_rss_mib": peak / 1024, "template_rss_mib": base / 1024, "mib_per_patient": disk / n / 2**20}))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", type=int, default=4, help="patients at size small")
    parser.add_argument("--full", type=int, default=1, help="patients at size full (0 to skip)")
    args = parser.parse_args()
    for size, n in (("small", args.small), ("full", args.full)):
        if n <= 0:
            continue
        res = subprocess.run([sys.executable, "-c", _CHILD, size, str(n)], capture_output=True, text=True, check=True)
        r = json.loads(res.stdout.strip().splitlines()[-1])
        print(
            f"{r['size']:>5}: {r['patients']} patient(s), {r['s_per_patient']:.2f} s/patient "
            f"(+{r['setup_s']:.2f} s template load), peak RSS {r['peak_rss_mib']:.0f} MiB "
            f"(template alone {r['template_rss_mib']:.0f} MiB), {r['mib_per_patient']:.1f} MiB on disk/patient"
        )


if __name__ == "__main__":
    main()
