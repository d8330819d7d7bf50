"""``densenet3d`` training step and inference throughput on random tumour cubes, patients/s.

A training step is forward + cross-entropy + backward + AdamW step (the method's lr and weight decay),
through the method's own ``build`` and ``logits``; inference is a forward pass in eval mode under
``torch.inference_mode``. Batch (4, 4, S, S, S) float32: S = 64 is the default tumour cube, 32 the demo's.
"""

from __future__ import annotations

from _harness import Case, Context, Row, make_row, measure

BATCH = 4
CASES = [
    Case(f"densenet3d-{mode}", f"{s}^3 b{BATCH}", quick=s == 32, params={"mode": mode, "edge": s})
    for mode in ("train", "infer") for s in (32, 64)
]


def run(case: Case, ctx: Context) -> list[Row]:
    import torch
    from torch.nn import functional

    from gliotype.methods import create_method

    torch.manual_seed(0)
    method = create_method("densenet3d")
    net = method.build(2)
    edge = case.params["edge"]
    batch = {"image": torch.randn(BATCH, 4, edge, edge, edge)}
    y = torch.arange(BATCH) % 2
    if case.params["mode"] == "train":
        opt = torch.optim.AdamW(net.parameters(), lr=method.config.lr, weight_decay=method.config.weight_decay)

        def call() -> None:
            opt.zero_grad(set_to_none=True)
            functional.cross_entropy(method.logits(net, batch), y).backward()
            opt.step()
        per, note = "step", "forward + cross-entropy + backward + AdamW"
    else:
        net.eval()

        def call() -> None:
            with torch.inference_mode():
                method.logits(net, batch)
        per, note = "batch", "forward, eval mode, inference_mode"
    runs = ctx.repeats(3 if edge == 64 else 5)
    times = measure(call, runs)
    return [make_row(case, times, per=per, items=BATCH, unit="patients/s", note=note)]
