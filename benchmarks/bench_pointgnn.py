"""``GeometricLearner`` (paper 000's point-cloud GNN) training step and inference throughput, clouds/s.

Batch of 8 clouds of 512 points, default widths (stages 32-64-64-128, edge network hidden 32, at most 32
neighbours). The clouds are lobulated ellipsoids (axes 1, 0.7, 0.5) scaled into ``[-1, 1]``, like a
tumour surface after preparation: denser than a unit sphere, so most points reach the 32-neighbour cap
(the expensive case). A training step is forward + cross-entropy + backward + Adam step in train mode
(random FPS start); inference is eval mode under ``torch.inference_mode``. The ``1thr`` rows pin
torch to one intra-op thread: on a shared, busy machine two threads on two cores stall on each other,
so those rows show what the model costs regardless of the machine's load.

Measured (2-core AMD EPYC VM, torch 2.13 CPU, load average 1.4), default widths:

===================  ============  ===========  ========
case                 train, c/s    infer, c/s   peak RSS
===================  ============  ===========  ========
2 threads            59.5          72.8         550 MB
1 thread             43.2          61.3         540 MB
===================  ============  ===========  ========

With PyG's own NNConv message passing (a weight matrix per edge) instead of ``FactorizedNNConv`` the
same training step ran at 4.7 clouds/s (2.5 on one thread; one thread, narrower stages: 16-32-32-64
10.4, 16-16-32-32 17.2, 8-16-16-32 35.5 clouds/s). Under a load average of 5 from other jobs, 2-thread
rows drop up to 10x (two threads on two busy cores stall on each other); the 1-thread
rows barely move.
"""

from __future__ import annotations

from _harness import Case, Context, Row, Target, make_row, measure

BATCH, POINTS = 8, 512
TARGET = Target(">= 20 clouds/s on 2 cores", (("throughput", ">=", 20.0),))
CASES = [
    Case(f"pointgnn-{mode}", f"{POINTS}pts b{BATCH}" + (" 1thr" if threads == 1 else ""),
         target=TARGET if mode == "train" else None, params={"mode": mode, "threads": threads})
    for mode in ("train", "infer") for threads in (None, 1)
]


def clouds(n: int, points: int, seed: int = 0):
    """Lobulated ellipsoids, (n, points, 3), centred and scaled into [-1, 1]."""
    import torch

    g = torch.Generator().manual_seed(seed)
    d = torch.randn(n, points, 3, generator=g)
    d = d / d.norm(dim=-1, keepdim=True)
    theta, phi = torch.arccos(d[..., 2].clamp(-1, 1)), torch.atan2(d[..., 1], d[..., 0])
    r = 1 + 0.2 * torch.sin(3 * theta) * torch.cos(2 * phi)
    p = d * r[..., None] * torch.tensor([1.0, 0.7, 0.5])
    p = p - p.mean(1, keepdim=True)
    return p / p.abs().amax((1, 2), keepdim=True)


def run(case: Case, ctx: Context) -> list[Row]:
    import torch
    from torch.nn import functional

    from gliotype.nn.pointgnn import GeometricLearner

    if case.params["threads"]:
        torch.set_num_threads(case.params["threads"])
    torch.manual_seed(0)
    net = GeometricLearner()
    points, y = clouds(BATCH, POINTS), torch.arange(BATCH) % 2
    if case.params["mode"] == "train":
        opt = torch.optim.Adam(net.parameters(), lr=1e-3)

        def call() -> None:
            opt.zero_grad(set_to_none=True)
            functional.cross_entropy(net(points), y).backward()
            opt.step()
        per, note = "step", "forward + cross-entropy + backward + Adam, train mode"
    else:
        net.eval()

        def call() -> None:
            with torch.inference_mode():
                net(points)
        per, note = "batch", "forward, eval mode, inference_mode"
    times = measure(call, ctx.repeats(7, quick=3))
    note += f"; {torch.get_num_threads()} torch thread(s)"
    return [make_row(case, times, per=per, items=BATCH, unit="clouds/s", note=note)]
