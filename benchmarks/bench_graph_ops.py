"""``gliotype.nn.graph`` (radius_graph, knn_graph, fps) on uniform 3-D points, with ``bench_graph``'s cases.

Reuses ``bench_graph.py``'s constants and scipy / numpy reference functions; the note gives the
reference's median time and ours / reference. One process per point-cloud size, so the peak RSS of a
row is that of its size's three operations together.
"""

from __future__ import annotations

import statistics

from _harness import Case, Context, Row, make_row, measure

CASES = [Case("graph", "512x16", params={"n": 512, "b": 16}),
         Case("graph", "4096x1", quick=False, params={"n": 4096, "b": 1})]


def run(case: Case, ctx: Context) -> list[Row]:
    import numpy as np
    import torch
    from bench_graph import K, RADIUS, RATIO, ref_fps, ref_knn, ref_radius

    from gliotype.nn import fps, knn_graph, radius_graph

    n, b = case.params["n"], case.params["b"]
    pts = np.random.default_rng(0).random((n * b, 3)).astype(np.float32)
    pos, sizes, r = torch.from_numpy(pts), [n] * b, RADIUS[n]
    batch = torch.repeat_interleave(torch.arange(b), n)
    ops = [("radius_graph", lambda: radius_graph(pos, r, batch, max_num_neighbors=None),
            lambda: ref_radius(pts, sizes, r), "cKDTree.query_ball_point"),
           (f"knn_graph k={K}", lambda: knn_graph(pos, K, batch), lambda: ref_knn(pts, sizes, K), "cKDTree.query"),
           (f"fps r={RATIO}", lambda: fps(pos, batch, RATIO, random_start=False),
            lambda: ref_fps(pts, sizes, RATIO), "numpy loop")]
    runs = ctx.repeats(7, quick=3)
    rows = []
    for op, ours, ref, ref_name in ops:
        times = measure(ours, runs)
        row = make_row(case, times, per="call", items=n * b, unit="points/s", bench=f"graph {op}")
        ref_s = statistics.median(measure(ref, runs))
        row.note = f"ref ({ref_name}) {ref_s * 1e3:.2f} ms, ours/ref {row.time_s / ref_s:.2f}"
        rows.append(row)
    return rows
