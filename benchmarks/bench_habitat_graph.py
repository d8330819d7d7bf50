"""HiPerfGNN's graph construction (``gliotype.prepare.habitat_graph``) on a full-size-like tumour, per patient.

The tumour: an ellipsoid of ~30k voxels on a 2 mm grid (the paper's 30,744-voxel example), codes 1..8 from
three smoothed Gaussian fields thresholded at 0 (one bit each: ~180 habitats, the paper's 179), or the
same with 4.5% of the voxels given a random code ("noisy": ~1,000 habitats, the paper's 1,082); encoder
latents (n, 3, 256) and four structural channels (smoothed noise) are random. Inputs are built untimed.

``coarse``: :func:`coarse_graph` (cc3d habitats, mean latents, centroids, kNN edges, 9-d cosine edge
features); the authors' code takes 0.43 s without I/O (3.19 s with, noisy). ``fine``: :func:`fine_graph`
(SLIC per habitat on its bounding-box crop, mean intensities, descriptors, 16-d edge features) on the
habitat map; the authors' code takes 3.40 s (5.42 s noisy).
"""

from __future__ import annotations

from _harness import Case, Context, Row, Target, make_row, measure

SHAPE, RADII, SIGMA, NOISY_FLIP = (48, 48, 48), (22.0, 19.0, 17.0), 2.2, 0.045
COARSE = Target("<= 0.1 s/patient", (("time_s", "<=", 0.1),))
FINE = Target("<= 0.5 s/patient", (("time_s", "<=", 0.5),))
CASES = [Case("hiperf-coarse", "smooth", target=COARSE, params={"flip": 0.0}),
         Case("hiperf-coarse", "noisy", target=COARSE, params={"flip": NOISY_FLIP}),
         Case("hiperf-fine", "smooth", target=FINE, params={"flip": 0.0}),
         Case("hiperf-fine", "noisy", target=FINE, params={"flip": NOISY_FLIP})]


def tumour(flip: float, seed: int = 0):
    """mask (X, Y, Z) bool, codes (n,) in 1..8, latents (n, 3, 256) float32, channels (4, X, Y, Z) float32."""
    import numpy as np
    from scipy import ndimage

    rng = np.random.default_rng(seed)
    grid = np.stack(np.meshgrid(*[np.arange(s) - (s - 1) / 2 for s in SHAPE], indexing="ij"), -1)
    mask = ((grid / np.array(RADII)) ** 2).sum(-1) <= 1
    bits = [ndimage.gaussian_filter(rng.standard_normal(SHAPE, np.float32), SIGMA) > 0 for _ in range(3)]
    codes = (1 + bits[0] + 2 * bits[1] + 4 * bits[2])[mask]
    flipped = rng.random(codes.size) < flip
    codes[flipped] = rng.integers(1, 9, int(flipped.sum()))
    latents = rng.standard_normal((codes.size, 3, 256), np.float32)
    channels = np.stack([ndimage.gaussian_filter(rng.standard_normal(SHAPE, np.float32), 1.5) for _ in range(4)])
    return mask, codes, latents, channels / channels.std()


def cpu_seconds(fn, runs: int) -> float:
    """Median CPU time (this process) of ``runs`` calls: less sensitive than wall time to other work on the cores."""
    import statistics
    import time

    def once() -> float:
        t0 = time.process_time()
        fn()
        return time.process_time() - t0

    return statistics.median(once() for _ in range(runs))


def run(case: Case, ctx: Context) -> list[Row]:
    from gliotype.prepare.habitat_graph import coarse_graph, fine_graph

    mask, codes, latents, channels = tumour(case.params["flip"])
    coarse = coarse_graph(mask, codes, latents)
    runs = ctx.repeats(5, quick=3)
    if case.name == "hiperf-coarse":
        fn = lambda: coarse_graph(mask, codes, latents)  # noqa: E731
        note = (f"{mask.sum()} voxels, {len(coarse['x'])} habitats, {coarse['edge_index'].shape[1]} directed edges; "
                "authors 0.43 s (no I/O)")
    else:
        fine = fine_graph(channels, coarse["habitat_map"])
        fn = lambda: fine_graph(channels, coarse["habitat_map"])  # noqa: E731
        note = (f"{len(coarse['x'])} habitats -> {len(fine['x'])} supervoxels, {fine['edge_index'].shape[1]} directed "
                f"edges, {int(fine['slic_collapsed'])} collapsed; authors 3.40 s")
    times = measure(fn, runs)
    note = f"CPU {cpu_seconds(fn, runs) * 1e3:.0f} ms; {note}"
    return [make_row(case, times, per="patient", items=1, unit="patients/s", note=note)]
