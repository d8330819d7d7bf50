"""HiPerfGNN's hierarchical network (``gliotype.nn.hiperf``) on full-size patient graphs: patients/s.

The graphs: ``hierarchy`` of ``bench_habitat_graph``'s tumour (~30k voxels; "smooth": ~180 habitats and
their SLIC supervoxels; "noisy": ~1,000 habitats), eight patients made from it by re-drawing the node
features (the structure is shared, the cost is the same). Network: the method's defaults (hidden 64,
3 PNA layers per level, JK-LSTM, concatenation enrichment, three task heads: IDH, 1p/19q, 3-class grade).

* ``hiperf-train``: one optimisation step (forward, masked multi-task cross-entropy, backward, Adam) on a
  batch of 8 patients (the method's ``batch_size``), patients/s.
* ``hiperf-infer``: forward of the same batch under ``torch.inference_mode``, patients/s.

Graph construction is not timed (``bench_habitat_graph``); the graphs are built once, untimed.
"""

from __future__ import annotations

from _harness import Case, Context, Row, make_row, measure

BATCH = 8
CASES = [Case(name, size, params={"flip": flip}) for name in ("hiperf-train", "hiperf-infer")
         for size, flip in (("smooth b8", 0.0), ("noisy b8", 0.045))]


def run(case: Case, ctx: Context) -> list[Row]:
    import numpy as np
    import torch
    from bench_habitat_graph import tumour
    from torch.nn import functional as F

    from gliotype.methods import create_method
    from gliotype.methods.hiperf_graphs import to_tensors
    from gliotype.nn.hiperf import HierarchicalGNN, collate_hierarchy, degree_histogram
    from gliotype.prepare.habitat_graph import hierarchy

    mask, codes, latents, channels = tumour(case.params["flip"])
    graph = to_tensors({k: v for k, v in hierarchy(mask, codes, latents, channels).items()
                        if k not in ("habitat_map", "supervoxel_map")})
    gen = torch.Generator().manual_seed(0)
    items = [{**graph, "coarse_x": torch.randn(graph["coarse_x"].shape, generator=gen),
              "fine_x": torch.randn(graph["fine_x"].shape, generator=gen)} for _ in range(BATCH)]
    degs = {level: degree_histogram([it[f"{level}_edge_index"] for it in items],
                                    [len(it[f"{level}_x"]) for it in items]) for level in ("fine", "coarse")}
    tasks = {"idh": 2, "codel_1p19q": 2, "grade": 3}
    config = create_method("hiperfgnn").config.network_config(tasks, graph["fine_x"].shape[1],
                                                               graph["coarse_x"].shape[1])
    model = HierarchicalGNN(config, fine_deg=degs["fine"], coarse_deg=degs["coarse"])
    batch = collate_hierarchy(items)
    labels = {t: torch.from_numpy(np.arange(BATCH) % n) for t, n in tasks.items()}
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)

    def train_step():
        model.train()
        out = model(batch)
        loss = sum(F.cross_entropy(out[t], labels[t]) for t in tasks)
        opt.zero_grad()
        loss.backward()
        opt.step()

    def infer():
        model.eval()
        with torch.inference_mode():
            model(batch)

    times = measure(train_step if case.name == "hiperf-train" else infer, ctx.repeats(5, quick=2))
    note = (f"{len(graph['coarse_x'])} habitats, {len(graph['fine_x'])} supervoxels, "
            f"{graph['fine_edge_index'].shape[1]} fine edges per patient; "
            f"{sum(p.numel() for p in model.parameters()) / 1e3:.0f} k parameters")
    return [make_row(case, times, per="step", items=BATCH, unit="patients/s", note=note)]
