"""The hierarchical graph neural network of HiPerfGNN (paper 002, section 2.3).

A patient is two graphs: the coarse graph of perfusion habitats (nodes: 768-d VQ-VAE latents, edges:
9-d latent cosine similarities) and the fine graph of structural supervoxels (nodes: 4-d mean
intensities, edges: 16-d cross-channel similarities); each fine node has one coarse parent (the sparse
assignment ``A_SR->T`` of the paper, carried here as the parent index ``fine_parent``). The network:

1. fine GNN: input ``Linear`` to ``hidden``, ``layers`` PNA layers (aggregators mean, std, max, min;
   scalers identity, amplification, attenuation; edge features), each followed by GraphNorm, ReLU and
   dropout, then an LSTM jumping-knowledge readout over the layer outputs (eq. 4);
2. enrichment (eq. 5): the fine embeddings are mean-pooled into their parent coarse node and concatenated
   with the coarse node feature (``enrich="concat"``, paper), or projected to the coarse width by a
   ``Linear`` and added to it (``enrich="sum"``, author code); a coarse node without children gets zeros;
3. coarse GNN: the same block on the enriched coarse graph, then a global mean pool per patient and one
   2-layer MLP head per task.

``mode`` selects the variant of the paper's Table 2: ``"full"`` (the above), ``"coarse"`` (perfusion-only
flat graph: step 3 on the raw coarse features) and ``"fine"`` (structure-only graph: step 1, then the
global mean pool and heads on the fine embeddings). A variant never reads the inputs it does not use.

Choices the paper leaves open (recorded here):

* The degree histograms that normalise PNA's scalers are computed from the *training* graphs with
  :func:`degree_histogram` and passed to the constructor. They are registered buffers (``fine.deg``,
  ``coarse.deg``) as are PNA's derived averages, so a saved state dict carries them; rebuild a saved
  model with :meth:`HierarchicalGNN.from_state_dict` (config + state, no data needed).
* The input ``Linear`` (before the first PNA layer) is not in the paper; it brings the 768-d coarse
  features to ``hidden`` so the PNA messages stay small. Jumping knowledge reads the PNA outputs only.
* Each task head is ``Linear(hidden, hidden) -> ReLU -> Dropout -> Linear(hidden, n_classes)``.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Literal

import torch
from pydantic import BaseModel, ConfigDict, Field, model_validator
from torch import Tensor, nn
from torch_geometric.nn import GraphNorm, JumpingKnowledge, PNAConv, global_mean_pool
from torch_geometric.utils import scatter

from gliotype.nn.graph import check_edge_index

__all__ = ["AGGREGATORS", "SCALERS", "HiPerfConfig", "HierarchicalGNN", "PNABlock", "collate_hierarchy",
           "degree_histogram"]

log = logging.getLogger(__name__)

AGGREGATORS: tuple[str, ...] = ("mean", "std", "max", "min")
SCALERS: tuple[str, ...] = ("identity", "amplification", "attenuation")
_LEVEL_KEYS = {"coarse": ("coarse_x", "coarse_edge_index", "coarse_edge_attr"),
               "fine": ("fine_x", "fine_edge_index", "fine_edge_attr")}
_MODE_LEVELS = {"full": ("coarse", "fine"), "coarse": ("coarse",), "fine": ("fine",)}


class HiPerfConfig(BaseModel):
    """Architecture of :class:`HierarchicalGNN` (paper values as defaults)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    mode: Literal["full", "coarse", "fine"] = "full"
    enrich: Literal["concat", "sum"] = "concat"  # eq. 5 (paper) / author code
    fine_in: int = Field(4, ge=1)  # mean intensity of T1, T1CE, T2, FLAIR
    fine_edge: int = Field(16, ge=1)  # flattened 4 x 4 cross-channel similarity
    coarse_in: int = Field(768, ge=1)  # 3 latent positions x 256
    coarse_edge: int = Field(9, ge=1)  # flattened 3 x 3 latent cosine similarity
    hidden: int = Field(64, ge=1)
    layers: int = Field(3, ge=1)  # T_SR = T_T = 3
    dropout: float = Field(0.3, ge=0, lt=1)
    towers: int = Field(1, ge=1)
    tasks: dict[str, int] = Field(default_factory=lambda: {"idh": 2})  # task -> number of classes

    @model_validator(mode="after")
    def _check(self) -> HiPerfConfig:
        if self.hidden % self.towers:
            raise ValueError(f"HiPerfConfig: hidden ({self.hidden}) must be a multiple of towers "
                             f"({self.towers}); PNA splits the hidden channels evenly across towers")
        if not self.tasks:
            raise ValueError("HiPerfConfig: tasks is empty; give at least one, e.g. tasks={'idh': 2}")
        bad = {name: n for name, n in self.tasks.items() if n < 2}
        if bad:
            raise ValueError(f"HiPerfConfig: every task needs at least 2 classes; got {bad!r}")
        return self


def degree_histogram(edge_indices: Sequence[Tensor], num_nodes: Sequence[int]) -> Tensor:
    """Histogram of node in-degrees over a set of (training) graphs, as :class:`PNAConv` expects.

    The in-degree of node ``v`` is the number of edges ``u -> v`` (``edge_index[1] == v``): PNA aggregates
    messages at the target node. Nodes without incoming edges count in bin 0.

    Args:
        edge_indices: one ``[source; target]`` edge index per graph.
        num_nodes: the number of nodes of each graph, same order.

    Returns:
        ``hist[d]`` = number of nodes with in-degree ``d``, long, length ``max degree + 1``.

    Shapes:
        edge_indices[i]: (2, E_i), num_nodes[i]: int -> (max_degree + 1,)
    """
    if len(edge_indices) != len(num_nodes):
        raise ValueError(f"degree_histogram: got {len(edge_indices)} edge indices but {len(num_nodes)} node "
                         "counts; give one count per graph, in the same order")
    hist = torch.zeros(1, dtype=torch.long)
    for i, (edge_index, n) in enumerate(zip(edge_indices, num_nodes)):
        check_edge_index(edge_index, int(n), f"degree_histogram: graph {i}")
        deg = torch.bincount(edge_index[1].long().cpu(), minlength=int(n))
        counts = torch.bincount(deg)
        size = max(hist.numel(), counts.numel())
        hist = nn.functional.pad(hist, (0, size - hist.numel())) + nn.functional.pad(counts, (0, size - counts.numel()))
    return hist


class PNABlock(nn.Module):
    """Input projection, ``layers`` x (PNAConv -> GraphNorm -> ReLU -> dropout), then JK-LSTM (eq. 4).

    Args:
        in_channels: node feature width.
        edge_dim: edge feature width.
        hidden: width of every layer and of the output.
        layers: number of PNA layers.
        deg: in-degree histogram of the training graphs (:func:`degree_histogram`); kept as buffer ``deg``.
        towers: PNA towers (``hidden`` must be a multiple).
        dropout: dropout probability after each layer.

    Shapes:
        x: (N, in_channels), edge_index: (2, E), edge_attr: (E, edge_dim), batch: (N,) -> (N, hidden)
    """

    def __init__(self, in_channels: int, edge_dim: int, hidden: int, layers: int, deg: Tensor,
                 towers: int = 1, dropout: float = 0.0):
        super().__init__()
        deg = _check_histogram(deg)
        self.register_buffer("deg", deg)
        self.lin_in = nn.Linear(in_channels, hidden)
        self.convs = nn.ModuleList(PNAConv(hidden, hidden, list(AGGREGATORS), list(SCALERS), deg, edge_dim=edge_dim,
                                           towers=towers) for _ in range(layers))
        self.norms = nn.ModuleList(GraphNorm(hidden) for _ in range(layers))
        self.dropout = nn.Dropout(dropout)
        self.jk = JumpingKnowledge("lstm", channels=hidden, num_layers=layers + 1)

    def forward(self, x: Tensor, edge_index: Tensor, edge_attr: Tensor, batch: Tensor, n_graphs: int) -> Tensor:
        """Node embeddings after the JK readout, which reads the input projection and every layer's output.

        The input projection is a path around GraphNorm, which normalises each graph on its own: a graph of
        one node (a tumour that is a single habitat) leaves GraphNorm nothing but each feature's sign, and a
        shift shared by all of a graph's nodes (a tumour-wide rCBV) is what it removes first.
        """
        h = self.lin_in(x)
        outs = [h]
        for conv, norm in zip(self.convs, self.norms):
            h = self.dropout(torch.relu(norm(conv(h, edge_index, edge_attr), batch, n_graphs)))
            outs.append(h)
        return self.jk(outs)


class HierarchicalGNN(nn.Module):
    """HiPerfGNN's hierarchical GNN: fine GNN -> pool into parents -> coarse GNN -> one head per task.

    Args:
        config: the architecture; ``config.mode`` picks the variant.
        fine_deg: in-degree histogram of the training fine graphs (needed unless ``mode == "coarse"``).
        coarse_deg: in-degree histogram of the training coarse graphs (needed unless ``mode == "fine"``).

    The batch is a dict from :func:`collate_hierarchy`; a mode reads only its own keys:
    ``"coarse"``: ``coarse_x, coarse_edge_index, coarse_edge_attr, coarse_batch, n_graphs``;
    ``"fine"``: ``fine_x, fine_edge_index, fine_edge_attr, fine_batch, n_graphs``;
    ``"full"``: both sets and ``fine_parent``. ``coarse_x`` may require grad (saliency).

    Shapes:
        coarse_x: (H, coarse_in), coarse_edge_index: (2, Ec), coarse_edge_attr: (Ec, coarse_edge),
        coarse_batch: (H,), fine_x: (F, fine_in), fine_edge_index: (2, Ef), fine_edge_attr: (Ef, fine_edge),
        fine_batch: (F,), fine_parent: (F,), n_graphs: () -> {task: (B, n_classes)}

    Example:
        >>> cfg = HiPerfConfig(tasks={"idh": 2, "grade": 3})
        >>> model = HierarchicalGNN(cfg, fine_deg=degree_histogram(fine_eis, fine_ns),
        ...                         coarse_deg=degree_histogram(coarse_eis, coarse_ns))
        >>> same = HierarchicalGNN.from_state_dict(cfg, model.state_dict())  # rebuild from a checkpoint
    """

    def __init__(self, config: HiPerfConfig, fine_deg: Tensor | None = None, coarse_deg: Tensor | None = None):
        super().__init__()
        self.config = c = config
        levels = _MODE_LEVELS[c.mode]
        for level, deg in (("fine", fine_deg), ("coarse", coarse_deg)):
            if level in levels and deg is None:
                raise ValueError(f"HierarchicalGNN(mode={c.mode!r}) needs {level}_deg, the in-degree histogram of "
                                 f"the training {level} graphs: {level}_deg=degree_histogram(edge_indices, num_nodes); "
                                 "to rebuild a saved model use HierarchicalGNN.from_state_dict(config, state)")
        if "fine" in levels:
            self.fine = PNABlock(c.fine_in, c.fine_edge, c.hidden, c.layers, fine_deg, c.towers, c.dropout)
        coarse_in = c.coarse_in
        if c.mode == "full" and c.enrich == "concat":
            coarse_in += c.hidden
        elif c.mode == "full":
            self.enrich_proj = nn.Linear(c.hidden, c.coarse_in)
        if "coarse" in levels:
            self.coarse = PNABlock(coarse_in, c.coarse_edge, c.hidden, c.layers, coarse_deg, c.towers, c.dropout)
        self.heads = nn.ModuleDict({task: _head(c.hidden, n, c.dropout) for task, n in c.tasks.items()})

    @classmethod
    def from_state_dict(cls, config: HiPerfConfig, state: Mapping[str, Tensor]) -> HierarchicalGNN:
        """Rebuild a saved model: the degree histograms are read from ``state`` (``fine.deg``, ``coarse.deg``)."""
        degs = {level: state.get(f"{level}.deg") for level in ("fine", "coarse")}
        model = cls(config, fine_deg=degs["fine"], coarse_deg=degs["coarse"])
        model.load_state_dict(state)
        return model

    def forward(self, batch: Mapping[str, Tensor]) -> dict[str, Tensor]:
        """Logits per task, ``{task: (B, n_classes)}``."""
        z = self.embed(batch)
        return {task: head(z) for task, head in self.heads.items()}

    def embed(self, batch: Mapping[str, Tensor]) -> Tensor:
        """The pooled graph embedding, ``(B, hidden)``: what the task heads read."""
        _check_batch(batch, self.config)
        n = int(batch["n_graphs"])
        if self.config.mode == "fine":
            h = self._level(batch, "fine", batch["fine_x"], n)
            return global_mean_pool(h, batch["fine_batch"], n)
        x = batch["coarse_x"]
        if self.config.mode == "full":
            x = self._enrich(x, self._level(batch, "fine", batch["fine_x"], n), batch["fine_parent"])
        return global_mean_pool(self._level(batch, "coarse", x, n), batch["coarse_batch"], n)

    def _level(self, batch: Mapping[str, Tensor], level: str, x: Tensor, n: int) -> Tensor:
        block = self.fine if level == "fine" else self.coarse
        return block(x, batch[f"{level}_edge_index"], batch[f"{level}_edge_attr"], batch[f"{level}_batch"], n)

    def _enrich(self, coarse_x: Tensor, fine_h: Tensor, parent: Tensor) -> Tensor:
        """Eq. 5: mean of the children's embeddings, concatenated to (or projected and added to) the parent."""
        pooled = scatter(fine_h, parent, 0, dim_size=coarse_x.shape[0], reduce="mean")
        if self.config.enrich == "concat":
            return torch.cat([coarse_x, pooled], dim=-1)
        return coarse_x + self.enrich_proj(pooled)


def _head(hidden: int, n_classes: int, dropout: float) -> nn.Sequential:
    return nn.Sequential(nn.Linear(hidden, hidden), nn.ReLU(), nn.Dropout(dropout), nn.Linear(hidden, n_classes))


# ------------------------------------------------------------------------------------------ batching


def collate_hierarchy(items: Sequence[Mapping[str, Tensor]]) -> dict[str, Tensor]:
    """Stack patients' hierarchical graphs into one disjoint batch (PyG style, no padding).

    Each item holds ``coarse_x, coarse_edge_index, coarse_edge_attr`` and/or ``fine_x, fine_edge_index,
    fine_edge_attr``, and ``fine_parent`` (0-based coarse node of each fine node, within the item); all items
    must hold the same levels. Node tensors are concatenated, edge indices shifted by the number of nodes
    of the items before, ``fine_parent`` shifted by the number of coarse nodes before (dropped when the
    items have no coarse level). Graphs of one node and no edges (``edge_index`` of shape ``(2, 0)``) are fine.

    Returns:
        The batch: the concatenated level tensors, ``{level}_batch`` (item of each node), ``fine_parent``
        (when both levels are present) and ``n_graphs`` (a 0-d long tensor, ``B``).

    Shapes:
        items[i]: coarse_x (H_i, Dc), coarse_edge_index (2, Ec_i), coarse_edge_attr (Ec_i, Ec_dim),
        fine_x (F_i, Df), fine_edge_index (2, Ef_i), fine_edge_attr (Ef_i, Ef_dim), fine_parent (F_i,)
        -> coarse_x (sum H_i, Dc), coarse_edge_index (2, sum Ec_i), coarse_batch (sum H_i,), fine_parent (sum F_i,), ...
    """
    if not items:
        raise ValueError("collate_hierarchy: got no items; a batch needs at least one patient graph")
    levels = [level for level, keys in _LEVEL_KEYS.items() if keys[0] in items[0]]
    if not levels:
        raise ValueError(f"collate_hierarchy: item 0 has neither 'coarse_x' nor 'fine_x'; its keys are {sorted(items[0])!r}")
    out: dict[str, Tensor] = {}
    for level in levels:
        out.update(_collate_level(items, level))
    if "coarse" in levels and "fine" in levels:
        out["fine_parent"] = _collate_parents(items)
    out["n_graphs"] = torch.tensor(len(items))
    return out


def _collate_level(items: Sequence[Mapping[str, Tensor]], level: str) -> dict[str, Tensor]:
    kx, kei, kea = _LEVEL_KEYS[level]
    xs, eis, eas, counts, offset = [], [], [], [], 0
    for i, item in enumerate(items):
        missing = [k for k in _LEVEL_KEYS[level] if k not in item]
        if missing:
            raise ValueError(f"collate_hierarchy: item {i} lacks {missing!r} but item 0 has the {level} level; "
                             "every item of a batch must hold the same levels")
        x, ei, ea = item[kx], item[kei], item[kea]
        n = _check_level(x, ei, ea, f"collate_hierarchy: item {i}, {level}")
        xs.append(x)
        eis.append(ei.long() + offset)
        eas.append(ea)
        counts.append(n)
        offset += n
    batch = torch.repeat_interleave(torch.arange(len(items)), torch.tensor(counts))
    return {kx: torch.cat(xs), kei: torch.cat(eis, dim=1), kea: torch.cat(eas), f"{level}_batch": batch.to(xs[0].device)}


def _collate_parents(items: Sequence[Mapping[str, Tensor]]) -> Tensor:
    parents, offset = [], 0
    for i, item in enumerate(items):
        n_coarse, n_fine = item["coarse_x"].shape[0], item["fine_x"].shape[0]
        p = item.get("fine_parent")
        if p is None or p.shape != (n_fine,):
            raise ValueError(f"collate_hierarchy: item {i} needs fine_parent of shape ({n_fine},) (one coarse parent "
                             f"per fine node); got {None if p is None else tuple(p.shape)!r}")
        if n_fine and (int(p.min()) < 0 or int(p.max()) >= n_coarse):
            raise ValueError(f"collate_hierarchy: item {i}: fine_parent must index its {n_coarse} coarse nodes "
                             f"(0..{n_coarse - 1}); got values in [{int(p.min())}, {int(p.max())}]")
        parents.append(p.long() + offset)
        offset += n_coarse
    return torch.cat(parents)


# ------------------------------------------------------------------------------------------ checks


def _check_level(x: Tensor, edge_index: Tensor, edge_attr: Tensor, where: str) -> int:
    if x.dim() != 2 or x.shape[0] < 1:
        raise ValueError(f"{where}: node features must have shape (N, D) with N >= 1; got {tuple(x.shape)}")
    check_edge_index(edge_index, x.shape[0], where)
    if edge_attr.dim() != 2 or edge_attr.shape[0] != edge_index.shape[1]:
        raise ValueError(f"{where}: edge_attr must have shape (E, D) with E = {edge_index.shape[1]} edges "
                         f"(use shape (0, D) for a graph without edges); got {tuple(edge_attr.shape)}")
    return x.shape[0]


def _check_histogram(deg: Tensor) -> Tensor:
    deg = torch.as_tensor(deg).detach().long().cpu()
    if deg.dim() != 1 or deg.numel() < 2 or bool((deg < 0).any()) or int(deg[1:].sum()) == 0:
        raise ValueError("PNA needs the in-degree histogram of the training graphs (hist[d] = number of nodes of "
                         "in-degree d, some d >= 1), e.g. degree_histogram(edge_indices, num_nodes); got "
                         f"{deg.tolist()!r}; a histogram of isolated nodes only would divide PNA's scalers by 0")
    return deg


def _check_batch(batch: Mapping[str, Tensor], config: HiPerfConfig) -> None:
    widths = {"coarse": (config.coarse_in, config.coarse_edge), "fine": (config.fine_in, config.fine_edge)}
    for level in _MODE_LEVELS[config.mode]:
        needed = (*_LEVEL_KEYS[level], f"{level}_batch", "n_graphs") + (("fine_parent",) if config.mode == "full" else ())
        missing = [k for k in needed if k not in batch]
        if missing:
            raise ValueError(f"HierarchicalGNN(mode={config.mode!r}): the batch lacks {missing!r}; build it with "
                             f"collate_hierarchy from items that hold the {level} level")
        x, ea = batch[f"{level}_x"], batch[f"{level}_edge_attr"]
        if x.shape[-1] != widths[level][0] or ea.shape[-1] != widths[level][1]:
            raise ValueError(f"HierarchicalGNN: {level}_x must have {widths[level][0]} features and {level}_edge_attr "
                             f"{widths[level][1]} (config {level}_in / {level}_edge); got {x.shape[-1]} and "
                             f"{ea.shape[-1]}")
