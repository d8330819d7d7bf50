"""Benchmark gliotype.nn.graph against straightforward scipy / numpy references.

Cases: 512 points x batch 16, and 4096 points x batch 1, uniform in the unit cube (3-D).

* radius_graph (no neighbour limit) vs ``scipy.spatial.cKDTree(...).query_ball_point`` per example
* knn_graph (k=16)                   vs ``cKDTree(...).query(k + 1)`` per example
* fps (ratio 0.25, fixed start)      vs a plain numpy loop per example

Both sides produce the same output (a LongTensor edge index / index vector; the references include
building it), which is checked once before timing. Prints the median wall time over REPEATS runs
after one warm-up run and the ratio ours / reference; writes no files.

Run: ``python benchmarks/bench_graph.py [--repeats 7] [--device cpu|cuda] [--threads N]``
"""

from __future__ import annotations

import argparse
import math
import statistics
import time

import numpy as np
import torch
from scipy.spatial import cKDTree

from gliotype.nn import fps, knn_graph, radius_graph

K = 16
RATIO = 0.25
# radius chosen so a point has about 17 neighbours on average in either case
RADIUS = {512: 0.2, 4096: 0.1}


def ref_radius(pts: np.ndarray, sizes: list[int], r: float) -> torch.Tensor:
    src, dst, off = [], [], 0
    for n in sizes:
        block = pts[off : off + n]
        for i, nbrs in enumerate(cKDTree(block).query_ball_point(block, r)):
            nb = np.sort(np.asarray(nbrs, dtype=np.int64))
            nb = nb[nb != i]
            src.append(nb + off)
            dst.append(np.full(nb.size, i + off, dtype=np.int64))
        off += n
    return torch.from_numpy(np.stack([np.concatenate(src), np.concatenate(dst)]))


def ref_knn(pts: np.ndarray, sizes: list[int], k: int) -> torch.Tensor:
    src, dst, off = [], [], 0
    for n in sizes:
        block = pts[off : off + n]
        _, idx = cKDTree(block).query(block, k + 1)
        src.append(idx[:, 1:].reshape(-1) + off)
        dst.append(np.repeat(np.arange(n), k) + off)
        off += n
    return torch.from_numpy(np.stack([np.concatenate(src), np.concatenate(dst)]).astype(np.int64))


def ref_fps(pts: np.ndarray, sizes: list[int], ratio: float) -> torch.Tensor:
    out, off = [], 0
    for n in sizes:
        block = pts[off : off + n]
        m = math.ceil(ratio * n)
        chosen = np.empty(m, dtype=np.int64)
        chosen[0] = 0
        d = ((block - block[0]) ** 2).sum(1)
        for s in range(1, m):
            chosen[s] = int(np.argmax(d))
            d = np.minimum(d, ((block - block[chosen[s]]) ** 2).sum(1))
        out.append(chosen + off)
        off += n
    return torch.from_numpy(np.concatenate(out))


def median_time(fn, repeats: int, sync) -> float:
    fn()  # warm-up
    sync()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=7, help="timed runs after warm-up (>= 5)")
    parser.add_argument("--device", default="cpu", help="device for our functions")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: default)")
    args = parser.parse_args()
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    repeats = max(5, args.repeats)
    device = torch.device(args.device)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)

    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}, device {device}, "
          f"median of {repeats} runs after 1 warm-up")
    print(f"{'case':<14}{'op':<14}{'ours [ms]':>11}{'ref [ms]':>11}{'ours/ref':>10}")
    rng = np.random.default_rng(0)
    for n, b in [(512, 16), (4096, 1)]:
        pts = rng.random((n * b, 3))
        sizes = [n] * b
        pos = torch.tensor(pts, dtype=torch.float32, device=device)
        batch = torch.repeat_interleave(torch.arange(b, device=device), n)
        pts32 = pts.astype(np.float32)
        r = RADIUS[n]
        cases = [
            ("radius_graph",
             lambda: radius_graph(pos, r, batch, max_num_neighbors=None),
             lambda: ref_radius(pts32, sizes, r)),
            (f"knn_graph k={K}",
             lambda: knn_graph(pos, K, batch),
             lambda: ref_knn(pts32, sizes, K)),
            (f"fps r={RATIO}",
             lambda: fps(pos, batch, RATIO, random_start=False),
             lambda: ref_fps(pts32, sizes, RATIO)),
        ]
        for op, ours, ref in cases:
            a, e = ours().cpu(), ref()
            if op.startswith("knn"):  # same neighbour sets (order within a centre may differ)
                same = torch.equal(a[1], e[1]) and torch.equal(
                    a[0].view(-1, K).sort(1).values, e[0].view(-1, K).sort(1).values)
            else:
                same = torch.equal(a, e)
            if not same:
                raise SystemExit(f"{op}: ours and reference disagree for {n} x {b}")
            t_ours = median_time(ours, repeats, sync)
            t_ref = median_time(ref, repeats, lambda: None)
            print(f"{f'{n} x {b}':<14}{op:<14}{t_ours * 1e3:>11.2f}{t_ref * 1e3:>11.2f}"
                  f"{t_ours / t_ref:>10.2f}")


if __name__ == "__main__":
    main()
