"""Paper 004's "Focus on Focus" training step (``gliotype.nn.fof``): images/s, batch 2.

One step: :func:`~gliotype.nn.fof.fof_loss` on :class:`~gliotype.nn.fof.FoFNetwork` (ViT-Tiny/16, the
:class:`~gliotype.nn.vit.ViTConfig` defaults: embed 192, depth 12, 3 heads; 3 classes plus the background
class; six MCA projection heads of width 128 for idh, codel_1p19q and four CNVs) with the
:class:`~gliotype.nn.fof.FoFLossConfig` defaults (FRL and MCA on: the global view, Grad-CAM on block -2,
the positive and negative views, ``L_CLS + 0.2 L_FRL + 0.2 L_MCA``), then ``backward``, an AdamW step
(lr 1e-4, weight decay 0.01) and ``zero_grad``. Inputs: a batch of 2 random normal images ``S x S``
(``image_size=S``, so the position embeddings are used as learned), classes in {0, 1, 2}, biomarker
statuses (idh, 1p/19q in {0, 1}; CNVs in 0..4), normal statuses ``[0, 0, 2, 2, 2, 2]``. All are made once,
untimed.

* ``fof-train-224`` / ``fof-train-512``: fp32.
* ``...-bf16``: the same with ``torch.autocast("cpu", dtype=torch.bfloat16)`` around ``fof_loss``
  (the backward and the optimiser step outside it, parameters fp32).
* ``vit-train-224``: the plain ViT baseline step (``FoFLossConfig(frl=False, mca=False)``: one forward,
  cross-entropy on the real classes), for reference.
* 1024 px (the paper's setting) is left out: ``run.py`` has no opt-in cases (a ``quick=False`` case runs in
  every full run) and a step took 80-110 s on 2 cores shared with other jobs (load average 5-7; bf16 80 s
  and 3.5 GB, fp32 110 s and 5.3 GB peak RSS), i.e. 5-8 minutes for a warm-up and 3 runs. To measure it, add
  ``_case("fof-train-1024", 1024, "bf16", quick=False, timeout_s=1800)`` to ``CASES`` (bf16 is the faster).

Targets and the authors' figures (``../shared/PERFORMANCE.md``, the authors' code on 2 cores): 224 px
0.524 s/step (3.81 images/s), target >= 2x; 512 px 3.51 s/step (0.571 images/s) and 5.5 GB, target
>= 2x and <= 2 GB; 1024 px 93.8 s/step (0.0213 images/s) and 21.3 GB, target >= 5x and <= 4 GB. Each
row's note gives the authors' figure and this row's ratio to it. Threads: 2 (torch's intra-op pool).
"""

from __future__ import annotations

from _harness import Case, Context, Row, Target, make_row, measure

BATCH = 2
BIOMARKERS = ("idh", "codel_1p19q", "cnv_PTEN", "cnv_EGFR", "cnv_CARD11", "cnv_FGFR2")
# the authors' training step on 2 cores: seconds per step of batch 2 and peak RSS, GB
AUTHORS = {224: (0.524, 0.96), 512: (3.51, 5.5), 1024: (93.8, 21.3)}
TARGETS = {
    224: Target(">= 7.62 images/s (2x)", (("throughput", ">=", 2 * BATCH / AUTHORS[224][0]),)),
    512: Target(">= 1.14 images/s (2x), <= 2 GB",
                (("throughput", ">=", 2 * BATCH / AUTHORS[512][0]), ("peak_rss_mb", "<=", 2000.0))),
    1024: Target(">= 0.107 images/s (5x), <= 4 GB",
                 (("throughput", ">=", 5 * BATCH / AUTHORS[1024][0]), ("peak_rss_mb", "<=", 4000.0))),
}


def _case(name: str, side: int, dtype: str, quick: bool, fof: bool = True, timeout_s: int = 600) -> Case:
    return Case(name, f"b{BATCH} {dtype}", quick=quick, target=TARGETS[side] if fof else None,
                params={"side": side, "bf16": dtype == "bf16", "fof": fof}, timeout_s=timeout_s)


CASES = [
    _case("fof-train-224", 224, "fp32", quick=True),
    _case("fof-train-224-bf16", 224, "bf16", quick=True),
    _case("fof-train-512", 512, "fp32", quick=False),
    _case("fof-train-512-bf16", 512, "bf16", quick=False),
    _case("vit-train-224", 224, "fp32", quick=True, fof=False),
]


def run(case: Case, ctx: Context) -> list[Row]:
    import contextlib

    import torch

    from gliotype.nn.fof import FoFLossConfig, FoFNetwork, fof_loss
    from gliotype.nn.vit import ViTConfig

    torch.set_num_threads(2)
    side, bf16, fof = case.params["side"], case.params["bf16"], case.params["fof"]
    torch.manual_seed(0)
    net = FoFNetwork(ViTConfig(n_classes=3, image_size=side), biomarkers=BIOMARKERS, projection_dim=128).train()
    gen = torch.Generator().manual_seed(0)
    images = torch.randn(BATCH, 3, side, side, generator=gen)
    y = torch.randint(0, 3, (BATCH,), generator=gen)
    markers = torch.cat([torch.randint(0, 2, (BATCH, 2), generator=gen),
                         torch.randint(0, 5, (BATCH, 4), generator=gen)], dim=1)
    normal = torch.tensor([0, 0, 2, 2, 2, 2])
    config = FoFLossConfig() if fof else FoFLossConfig(frl=False, mca=False)
    opt = torch.optim.AdamW(net.parameters(), lr=1e-4, weight_decay=0.01)

    def step() -> None:
        with torch.autocast("cpu", dtype=torch.bfloat16) if bf16 else contextlib.nullcontext():
            loss, _, _ = fof_loss(net, images, y, markers, normal, config)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    runs = ctx.repeats(5, quick=2) if side == 224 else ctx.repeats(3, quick=1)
    times = measure(step, runs)
    row = make_row(case, times, per="step", items=BATCH, unit="images/s")
    what = ("FRL + MCA" if fof else "plain ViT (no FRL, no MCA)") + (", bf16 autocast" if bf16 else ", fp32")
    authors_s, authors_gb = AUTHORS[side]
    ratio = f"{authors_s / row.time_s:.2f}x authors' FoF step {authors_s} s ({BATCH / authors_s:.3g} images/s, " \
            f"{authors_gb} GB)"
    row.note = f"{what}; {(side // 16) ** 2} tokens; {ratio}; {torch.get_num_threads()} threads"
    return [row]
