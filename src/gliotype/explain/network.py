"""``gliotype explain`` for ``brainnet``: which white-matter pathways drive a patient's prediction.

Writes, for one patient (every value the mean over the run's fold models):
  network_edges.csv       region_a, region_b (AAL names), importance, edge_attention: the pathways whose
                          GNNExplainer edge-mask importance exceeds 0.5 (paper section 4.5), most important first
  network_edges.nii.gz    those pathway ROIs weighted by importance (a voxel in several pathways takes the
                          largest), pulled back from MNI space onto the patient's T1 grid (same shape and
                          affine as ``<pid>-t1n``)
  network_attention.csv   region_a, region_b, edge_attention: the pathways the tumour points fall in and
                          their attention (eq. 2), the "tumour's pathways attended"
  point_attention.csv     x, y, z (scanner mm), attention: the geometric encoder's per-point attention
  explain.json            probabilities (the encoder's MLP head: the population graph needs other
                          patients), counts, the files

GNNExplainer (PyG ``Explainer``) learns one mask value per directed edge of the brain network; the
encoder sees each message scaled by the mask while the tumour inputs and the attentions stay as computed
for the patient. A pathway's importance is the mean of its two directions' masks.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import Tensor, nn
from torch_geometric.explain import Explainer, GNNExplainer

from gliotype.atlas.aal import load_aal
from gliotype.atlas.pathways import pathway_map
from gliotype.atlas.register import from_template, registration_from_arrays
from gliotype.atlas.template import load_template
from gliotype.explain._modes import eval_mode, frozen
from gliotype.explain.backmap import write_like
from gliotype.prepare.brain_voxels import network
from gliotype.prepare.cache import atomic_write_bytes
from gliotype.prepare.tumour_geometry import to_world

THRESHOLD = 0.5
"""Pathways with an importance above this are kept (paper: probability scores greater than 50%)."""


class NetworkLogits(nn.Module):
    """The full model's logits as a function of the brain network alone (PyG ``model(x, edge_index, edge_attr)``).

    Everything else (image and point features, the tumour latent of node attention) is held at the values
    the model computed for the patient.

    Shapes:
        x: (90, 16), edge_index: (2, M) directed, edge_attr: (M, 16) already times the edge attention
        -> logits (1, n_classes).
    """

    def __init__(self, model: nn.Module, fixed: dict[str, Tensor]):
        super().__init__()
        self.model, self.fixed = model, fixed

    def forward(self, x: Tensor, edge_index: Tensor, edge_attr: Tensor) -> Tensor:
        query = self.fixed.get("z_tumour") if self.model.attention else None
        u_brain, _ = self.model.network.encode(x, edge_index, edge_attr, 1, query)
        features = [self.fixed[k] for k in ("u_image", "u_points") if k in self.fixed]
        return self.model.head(torch.cat([*features, u_brain], dim=1))


def edge_importance(model: nn.Module, batch: dict[str, Tensor], class_index: int, epochs: int = 200,
                    seed: int = 0) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """GNNExplainer importance of each pathway of one patient's brain network, and the model's attentions.

    Args:
        model: a :class:`~gliotype.nn.multimodal.MultiModal` with the network encoder.
        batch: one patient's collated inputs (batch size 1).

    Returns:
        importance (E,) in [0, 1], and the patient's ``edge_attention`` (E,), ``node_attention`` (90,),
        ``point_attention`` (P,) where the model has them.
    """
    with eval_mode(model), frozen(model), torch.no_grad():
        out = model(batch)
    encoder = model.network
    attention = out.get("edge_attention")
    x, directed, attr = encoder.batched_graph(batch["node_attr"], batch["edge_attr"], model.edge_index, attention)
    fixed = {k: out[k] for k in ("u_image", "u_points", "z_tumour") if k in out}
    explainer = Explainer(model=NetworkLogits(model, fixed), algorithm=GNNExplainer(epochs=epochs),
                          explanation_type="phenomenon", node_mask_type=None, edge_mask_type="object",
                          model_config=dict(mode="multiclass_classification", task_level="graph", return_type="raw"))
    with eval_mode(model), frozen(model), torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        explanation = explainer(x, directed, edge_attr=attr, target=torch.tensor([class_index], device=x.device))
    mask = explanation.edge_mask.detach().cpu().numpy().reshape(2, -1)
    extras = {k: out[k][0].detach().cpu().numpy() for k in ("edge_attention", "node_attention", "point_attention")
              if k in out}
    return mask.mean(0).astype(np.float32), extras


def explain_network(method, models_and_states, item: dict, prepared: dict, case, class_index: int, out: Path,
                    epochs: int, device: torch.device) -> tuple[dict[str, Path], dict]:
    """Write the files of the module docstring for one patient; returns (files, summary)."""
    importances, extras = [], []
    for model, state in models_and_states:
        graph = method.graphs(state, [item])[0]
        batch, _ = method.collate([(graph, -1)])
        batch = {k: v.to(device) for k, v in batch.items()}
        importance, extra = edge_importance(model, batch, class_index, epochs=epochs)
        importances.append(importance)
        extras.append(extra)
    importance = np.mean(importances, axis=0)
    mean = {k: np.mean([e[k] for e in extras], axis=0) for k in extras[0]}
    arrays, meta = prepared["brain_voxels"]
    config = method.stage_config("brain_voxels")
    template = load_template()
    net = network(config, template)
    names = load_aal(template).names
    pairs = arrays["pairs"].astype(int)
    attention = mean.get("edge_attention", np.zeros(len(pairs)))
    frame = pd.DataFrame({"region_a": [names[a] for a in pairs[:, 0]], "region_b": [names[b] for b in pairs[:, 1]],
                          "importance": importance, "edge_attention": attention})
    files: dict[str, Path] = {}
    kept = frame[frame.importance > THRESHOLD].sort_values("importance", ascending=False)
    files["network_edges"] = _csv(kept, out / "network_edges.csv")
    attended = frame[frame.edge_attention > 0].sort_values("edge_attention", ascending=False)
    files["network_attention"] = _csv(attended[["region_a", "region_b", "edge_attention"]],
                                      out / "network_attention.csv")
    weights = np.where(importance > THRESHOLD, importance, 0.0)
    volume = pathway_map(net.pathways, weights, template.shape)
    reg = registration_from_arrays(arrays, meta)
    on_patient = from_template(reg, volume, tuple(meta["original_shape"]), np.asarray(meta["affine"]), template=template)
    files["network_edges_map"] = write_like(np.clip(on_patient, 0, 1).astype(np.float32), case.images["t1n"],
                                            out / "network_edges.nii.gz")
    if "point_attention" in mean and "tumour_geometry" in prepared:
        geometry, geometry_meta = prepared["tumour_geometry"]
        points_mm = to_world(geometry["points"], geometry_meta)
        table = pd.DataFrame({"x": points_mm[:, 0], "y": points_mm[:, 1], "z": points_mm[:, 2],
                              "attention": mean["point_attention"]})
        files["point_attention"] = _csv(table, out / "point_attention.csv")
    summary = {"gnnexplainer_epochs": epochs, "n_pathways": len(pairs), "pathways_above_0.5": len(kept),
               "pathways_attended": len(attended), "registration_dice": meta.get("dice"),
               "top_pathways": kept.head(10)[["region_a", "region_b", "importance"]].to_dict("records")}
    return files, summary


def _csv(frame: pd.DataFrame, path: Path) -> Path:
    atomic_write_bytes(path, frame.to_csv(index=False, float_format="%.5g").encode())
    return path
