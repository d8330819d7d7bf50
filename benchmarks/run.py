"""gliotype's benchmark suite (``make bench``): one table, and ``bench-out/bench.json`` to compare runs.

Every case runs in a fresh process (``_harness.py``), so each row's peak RSS is its own. Times are the
median of >= 3 timed runs after a warm-up run unless the row's note says otherwise (``--quick``: one to
three runs, small sizes only).

Usage::

    python benchmarks/run.py [--quick] [--only NAME ...] [--out FILE]
    python benchmarks/run.py --compare OLD.json            # run, then print new / old ratios
    python benchmarks/run.py --compare OLD.json NEW.json   # compare two saved runs, run nothing
    python benchmarks/run.py --list
    python benchmarks/run.py --work DIR                    # keep the synthetic cohorts in DIR for the next run

Adding a benchmark: write ``benchmarks/bench_<name>.py`` with ``CASES`` and ``run(case, ctx)`` (see
``_harness.py``) and add its module name to ``REGISTRY``.
"""

from __future__ import annotations

import argparse
import datetime
import difflib
import importlib
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict
from importlib import metadata
from pathlib import Path

from _harness import Case, Row

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
REGISTRY = [
    "bench_cohort",     # synth: synthesize, per patient, small and full
    "bench_prepare",    # prepare-tumour_image: the tumour cube stage, per patient
    "bench_prepare_workers",  # prepare-workers: 40 patients, tumour_image + tumour_geometry, --workers 1 vs 2
    "bench_geometry",   # prepare-tumour_geometry: the tumour surface point cloud stage, per patient, 1 core
    "bench_brainnet_prepare",  # prepare-brain_voxels: MNI152 registration + AAL node/edge sampling, per patient
    "bench_train",      # densenet3d-train / -infer: patients/s at 32^3 and 64^3
    "bench_rnaseq",     # rnaseq-lr-fit: seconds per fold, 200 x 1544
    "bench_graph_ops",  # graph: radius_graph, knn_graph, fps vs bench_graph's references
    "bench_pointgnn",   # pointgnn-train / -infer: GeometricLearner clouds/s, 512 points, batch 8
    "bench_vqvae",      # vqvae-encode / -tumour / -train / -recon: paper 002's perfusion VQ-VAE, both encoders
    "bench_habitat_graph",  # hiperf-coarse / -fine: HiPerfGNN habitat + SLIC supervoxel graphs, per patient
    "bench_hiperf_train",   # hiperf-train / -infer: HiPerfGNN hierarchical network, patients/s, batch 8
    "bench_tiles",      # tiles-level0 / -level1 / -resize / -grid: histology tiles/s from an 8k JPEG pyramid
    "bench_fof",        # fof-train-224 / -512 (fp32, bf16), vit-train-224: FoF training step images/s, batch 2
    "bench_wsi_rna",    # paper 003: ppi-louvain, stain-score, stain-patches, rna-load, rna-encoder-train, wsi-rna-*
    "bench_stages",     # prepare-<stage>: every registered stage no module above benches, per patient, small and full
    "bench_methods",    # <method>-train / -infer: every registered method no module above benches, prepared patients
]


def all_cases() -> list[tuple[str, Case]]:
    return [(name, case) for name in REGISTRY for case in importlib.import_module(name).CASES]


def select(cases: list[tuple[str, Case]], only: list[str] | None, quick: bool) -> list[tuple[str, Case]]:
    """The cases to run: those ``only`` names (case name, NAME:SIZE, name prefix or module), quick ones if asked."""
    def picked(sel: str, module: str, case: Case) -> bool:
        return (sel in (case.key, case.name, module, module.removeprefix("bench_"))
                or case.name.startswith(sel + "-"))

    known = sorted({c.name for _, c in cases} | {c.key for _, c in cases})
    for sel in only or []:
        if not any(picked(sel, m, c) for m, c in cases):
            close = difflib.get_close_matches(sel, known, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise SystemExit(f"--only {sel!r} matches no benchmark{hint}; known: {', '.join(known)}")
    chosen = [(m, c) for m, c in cases
              if (not only or any(picked(s, m, c) for s in only)) and (c.quick or not quick)]
    if not chosen:
        raise SystemExit(f"--quick leaves none of {only} (their sizes are not quick ones); drop --quick")
    return chosen


def run_case(module: str, case: Case, work: Path, quick: bool, result: Path) -> list[Row]:
    """Measure one case in a fresh process that writes its rows to ``result``; a failure becomes a row."""
    cmd = [sys.executable, str(HERE / "_harness.py"), module, case.key, "--work", str(work), "--result", str(result)]
    try:
        proc = subprocess.run(cmd + ["--quick"] * quick, capture_output=True, text=True, timeout=case.timeout_s)
    except subprocess.TimeoutExpired:
        return [Row(case.name, case.size, error=f"timed out after {case.timeout_s} s")]
    if proc.returncode != 0 or not result.is_file():
        sys.stderr.write(proc.stderr[-3000:])
        last = (proc.stderr.strip().splitlines() or [f"exit status {proc.returncode}"])[-1]
        return [Row(case.name, case.size, error=last)]
    return [Row(**r) for r in json.loads(result.read_text())]


def cpu_model() -> str:
    cpuinfo = Path("/proc/cpuinfo")
    lines = cpuinfo.read_text().splitlines() if cpuinfo.is_file() else []
    return next((x.split(":", 1)[1].strip() for x in lines if x.startswith("model name")), platform.processor())


def machine_info(quick: bool) -> dict:
    """The machine, read without importing torch here: a child process keeps its parent's peak RSS across
    ``exec`` (getrusage(2)), so a parent holding torch (~230 MB) would floor every case's peak RSS."""
    git = subprocess.run(["git", "describe", "--always", "--dirty"], cwd=ROOT, capture_output=True, text=True)
    probe = subprocess.run([sys.executable, "-c", "import torch; print(torch.__version__, torch.get_num_threads())"],
                           capture_output=True, text=True, check=True).stdout.split()
    return {"cpu_count": os.cpu_count(), "cpu_model": cpu_model(), "torch": probe[0],
            "torch_threads": int(probe[1]), "python": platform.python_version(),
            "gliotype": metadata.version("gliotype"), "commit": git.stdout.strip(),
            "date": datetime.datetime.now().isoformat(timespec="seconds"), "quick": quick,
            "load_avg_1min": round(os.getloadavg()[0], 2)}


def fmt(x: float | None) -> str:
    """A number to about 3 significant digits, without exponents for everyday magnitudes (12.3k, 4.56M)."""
    if x is None:
        return ""
    if abs(x) >= 1e4:
        scale, suffix = next((s, u) for s, u in ((1e9, "G"), (1e6, "M"), (1e3, "k")) if abs(x) >= s)
        return fmt(x / scale) + suffix
    return f"{x:,.0f}" if abs(x) >= 100 else f"{x:.1f}" if abs(x) >= 10 else f"{x:.2f}" if abs(x) >= 1 else f"{x:.3g}"


def fmt_time(s: float | None, per: str = "") -> str:
    if s is None:
        return ""
    value = f"{fmt(s)} s" if s >= 1 else f"{fmt(s * 1e3)} ms" if s >= 1e-3 else f"{fmt(s * 1e6)} us"
    return f"{value}/{per}" if per else value


def render(headers: list[str], rows: list[list[str]], right: set[int]) -> str:
    """A plain-text table; columns in ``right`` are right-aligned."""
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(headers)]

    def line(cells):
        cells = (c.rjust(w) if i in right else c.ljust(w) for i, (c, w) in enumerate(zip(cells, widths)))
        return "  ".join(cells).rstrip()

    return "\n".join([line(headers), line(["-" * w for w in widths]), *map(line, rows)])


def results_table(rows: list[Row]) -> str:
    body = [[r.bench, r.size, "FAILED" if r.error else fmt_time(r.time_s, r.per),
             "" if r.error else f"{fmt(r.throughput)} {r.unit}", str(r.runs or ""), spread(r.times_s),
             fmt(r.peak_rss_mb), r.target, {True: "yes", False: "no", None: ""}[r.met], r.error or r.note]
            for r in rows]
    headers = ["benchmark", "size", "median time", "throughput", "runs", "spread", "peak RSS (MB)", "target", "met",
               "note"]
    return render(headers, body, right={2, 3, 4, 5, 6})


def spread(times: list[float]) -> str:
    """(slowest - fastest) / median of a row's runs, in percent: how far to trust its median."""
    if len(times) < 2:
        return ""
    return f"{(max(times) - min(times)) / statistics.median(times):.0%}"


def header(info: dict) -> str:
    mode = "QUICK (small sizes, 1-3 runs)" if info["quick"] else "median of >= 3 runs after a warm-up unless noted"
    return (f"gliotype {info['gliotype']} @ {info['commit']}, {info['date']}: {mode}\n"
            f"machine: {info['cpu_count']} cores (os.cpu_count), {info['cpu_model']}; torch {info['torch']} "
            f"({info['torch_threads']} threads); python {info['python']}\n"
            f"load average {info['load_avg_1min']} at start (> 0.5: other work shares the cores, times are noisy); "
            "peak RSS: each case's own process (ru_maxrss)")


def compare(old: dict, new: dict) -> str:
    """new / old ratios of the rows the two runs share (time < 1 and throughput > 1: faster)."""
    before = {(r["bench"], r["size"]): r for r in old["rows"] if not r.get("error")}

    def ratio(a, b):
        return f"{a / b:.2f}" if a is not None and b else ""

    body = [[r["bench"], r["size"], fmt_time(o["time_s"]), fmt_time(r["time_s"]), ratio(r["time_s"], o["time_s"]),
             ratio(r["throughput"], o["throughput"]), ratio(r["peak_rss_mb"], o["peak_rss_mb"])]
            for r in new["rows"] if not r.get("error") and (o := before.get((r["bench"], r["size"])))]
    keys = ("cpu_count", "cpu_model", "torch", "torch_threads", "quick")
    differs = [f"{k}: {old['machine'].get(k)!r} -> {new['machine'].get(k)!r}" for k in keys
               if old["machine"].get(k) != new["machine"].get(k)]
    text = render(["benchmark", "size", "old time", "new time", "time new/old", "throughput new/old",
                   "RSS new/old"], body, right={2, 3, 4, 5, 6})
    if not body:
        text = "(no benchmark rows in common)"
    return ("WARNING, the runs differ in " + "; ".join(differs) + "\n" if differs else "") + text


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="small sizes only, fewer runs (a smoke test)")
    parser.add_argument("--only", action="append", metavar="NAME", help="run only these (repeatable; see --list)")
    parser.add_argument("--out", type=Path, default=ROOT / "bench-out" / "bench.json", help="where to write the JSON")
    parser.add_argument("--compare", nargs="+", type=Path, metavar="JSON",
                        help="OLD.json: run, then print new/old ratios; OLD.json NEW.json: compare only")
    parser.add_argument("--list", action="store_true", help="list the benchmark cases and exit")
    parser.add_argument("--work", type=Path, metavar="DIR",
                        help="keep the synthetic cohorts here for the next run (default: a temporary folder)")
    args = parser.parse_args()
    if args.compare and len(args.compare) > 2:
        parser.error("--compare takes OLD.json or OLD.json NEW.json")
    return args


def main() -> int:
    args = parse_args()
    old = json.loads(args.compare[0].read_text()) if args.compare else None
    if args.compare and len(args.compare) == 2:
        print(compare(old, json.loads(args.compare[1].read_text())))
        return 0
    cases = select(all_cases(), args.only, args.quick)
    if args.list:
        print("\n".join(f"{c.key:<32}{m:<18}{'quick' if c.quick else ''}" for m, c in cases))
        return 0
    info, rows, start = machine_info(args.quick), [], time.perf_counter()
    if args.work:
        args.work.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="gliotype-bench-", dir=args.work) as tmp:
        work = args.work or tmp
        for i, (module, case) in enumerate(cases, 1):
            print(f"[{i}/{len(cases)}] {case.key} ...", end=" ", file=sys.stderr, flush=True)
            t0 = time.perf_counter()
            rows += run_case(module, case, Path(work), args.quick, Path(work) / f"result-{i}.json")
            print(f"{time.perf_counter() - t0:.0f} s", file=sys.stderr, flush=True)
    info["wall_s"] = round(time.perf_counter() - start, 1)
    result = {"machine": info, "rows": [asdict(r) for r in rows]}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1))
    print(f"{header(info)}\n\n{results_table(rows)}\n\nwall time {info['wall_s']:.0f} s; written to {args.out}")
    if old is not None:
        print(f"\ncompared with {args.compare[0]}:\n{compare(old, result)}")
    return 1 if any(r.error for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
