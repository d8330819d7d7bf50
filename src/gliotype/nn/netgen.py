"""The brain-network generator of paper 001: self-supervised 16-d node and edge attributes.

The paper samples MRI voxels in each of the 90 atlas regions (the nodes) and along the white-matter
pathways between regions (the edges), and turns each sample vector into a 16-d attribute:

* nodes: an autoencoder, encoder ``4000 - 2048 - 1024 - 512 - 128 - 32 - 16`` and its mirror image as
  decoder, trained with the reconstruction (MSE) loss and Adam (weight decay ``5e-4``);
* edges: an anatomical MLP (``4000 - 2048 - 1024 - 512 - 128 - 32 - 16``) and an FA MLP
  (``1000 - 1024 - 512 - 128 - 32 - 16``), each followed by a projection head (``g``, ``g'``) into a shared
  space, trained with InfoNCE (paper eq. 1, ``tau = 0.1``, anatomical anchor -> FA) and SGD (momentum
  0.9, weight decay ``5e-4``). Only the anatomical branch is used at run time (no FA maps are needed to
  apply it);
* 1000 epochs, batch 50, learning rate ``1e-3`` multiplied by 0.9 every 50 epochs; then frozen.

Our choices (recorded here):

* Linear + ReLU layers, no BatchNorm; the 16-d codes and the reconstructions are linear (no ReLU on the
  last layer of an encoder or a decoder). Projection heads: ``16 - 32 - 32`` (``proj``).
* Cohorts without FA maps: the edge encoder gets a mirrored decoder and is trained as an autoencoder (MSE,
  Adam) like the nodes; :func:`train_generator` says which in its summary.
* ``max_edges_per_epoch`` (default 4000): an edge epoch draws at most this many edge vectors at random,
  because a cohort has hundreds of edges per patient and the anatomical MLP costs about as much per
  vector as the node autoencoder. ``epochs`` defaults to 50 (paper 1000) for CPU cost.
* The inputs are used as given (cast to float32): put them on a unit scale (e.g. z-scored MRI) before.
* A batch of one left at the end of an epoch is merged into the previous batch (InfoNCE needs two pairs).
* Fused Adam / SGD kernels (one pass over the ~22 M parameters of a paper-sized MLP).

Cost at paper widths (batch 50, ``torch.set_num_threads(2)``, 2-core AMD EPYC VM, torch 2.13; best of 15
steps): 0.17 s per node-autoencoder step, 0.066 s per contrastive edge step, 0.15 s per edge-autoencoder
step. An epoch of 20 patients (1800 node vectors, 4000 edge vectors drawn) is about 11 s with FA and 18 s
without, uncontended; with other jobs on the cores we measured 30-60 s per epoch.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field
from torch import Tensor, nn
from torch.nn import functional as F

from gliotype.losses.contrastive import info_nce

__all__ = ["EdgeEncoder", "Generator", "GeneratorConfig", "NodeAutoencoder", "mlp", "train_generator"]

log = logging.getLogger(__name__)


def mlp(dims: Sequence[int], final_activation: bool = False) -> nn.Sequential:
    """``Linear(dims[0], dims[1]) - ReLU - ... - Linear(dims[-2], dims[-1])`` (ReLU after the last if asked).

    Shapes:
        (N, dims[0]) -> (N, dims[-1])
    """
    dims = [int(d) for d in dims]
    if len(dims) < 2 or min(dims) < 1:
        raise ValueError(f"mlp: dims must hold at least two positive widths (in, ..., out); got {dims!r}")
    layers: list[nn.Module] = []
    for i, (d_in, d_out) in enumerate(zip(dims[:-1], dims[1:])):
        layers.append(nn.Linear(d_in, d_out))
        if i < len(dims) - 2 or final_activation:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)


class NodeAutoencoder(nn.Module):
    """Autoencoder of a region's voxel samples: ``in - hidden... - out`` and the mirrored decoder.

    Args:
        in_dim: voxel samples per region (paper: 4000).
        hidden: encoder widths between input and code (paper: 2048, 1024, 512, 128, 32).
        out: code size (paper: 16).

    Shapes:
        x: (N, in_dim) -> :meth:`encode`: (N, out); :meth:`forward`: reconstruction (N, in_dim)
    """

    def __init__(self, in_dim: int = 4000, hidden: Sequence[int] = (2048, 1024, 512, 128, 32), out: int = 16):
        super().__init__()
        self.in_dim, self.out = int(in_dim), int(out)
        self.encoder = mlp([in_dim, *hidden, out])
        self.decoder = mlp([out, *reversed(tuple(hidden)), in_dim])

    def encode(self, x: Tensor) -> Tensor:
        """The 16-d code, (N, out)."""
        return self.encoder(x)

    def forward(self, x: Tensor) -> Tensor:
        """The reconstruction, (N, in_dim)."""
        return self.decoder(self.encoder(x))


class EdgeEncoder(nn.Module):
    """Encoder of a pathway's voxel samples, trained against FA (contrastive) or as an autoencoder.

    Args:
        anat_dim: anatomical samples per pathway (paper: 4000).
        fa_dim: FA samples per pathway (paper: 1000); ``None`` when the cohort has no FA maps: then a
            mirrored decoder replaces the FA branch and the projection heads.
        anat_hidden: anatomical encoder widths (paper: 2048, 1024, 512, 128, 32).
        fa_hidden: FA encoder widths (paper: 1024, 512, 128, 32).
        out: code size (paper: 16).
        proj: widths of the projection heads ``g`` and ``g'`` after the code (ours: 32, 32).

    Shapes:
        anat: (E, anat_dim), fa: (E, fa_dim) -> :meth:`encode` / :meth:`forward`: (E, out);
        :meth:`projections`: two (E, proj[-1]); :meth:`reconstruct`: (E, anat_dim)
    """

    def __init__(self, anat_dim: int = 4000, fa_dim: int | None = 1000,
                 anat_hidden: Sequence[int] = (2048, 1024, 512, 128, 32),
                 fa_hidden: Sequence[int] = (1024, 512, 128, 32),
                 out: int = 16, proj: Sequence[int] = (32, 32)):
        super().__init__()
        self.anat_dim, self.fa_dim, self.out = int(anat_dim), None if fa_dim is None else int(fa_dim), int(out)
        self.anat = mlp([anat_dim, *anat_hidden, out])
        if self.fa_dim is None:
            self.decoder = mlp([out, *reversed(tuple(anat_hidden)), anat_dim])
        else:
            self.fa = mlp([self.fa_dim, *fa_hidden, out])
            self.head = mlp([out, *proj])
            self.head_fa = mlp([out, *proj])

    @property
    def contrastive(self) -> bool:
        """True when the encoder has an FA branch (trained with InfoNCE), False for the autoencoder form."""
        return self.fa_dim is not None

    def encode(self, anat: Tensor) -> Tensor:
        """The 16-d code of the anatomical branch (the one used at run time), (E, out)."""
        return self.anat(anat)

    def forward(self, anat: Tensor) -> Tensor:
        """Same as :meth:`encode`, (E, out)."""
        return self.encode(anat)

    def projections(self, anat: Tensor, fa: Tensor) -> tuple[Tensor, Tensor]:
        """``g(anat code)`` and ``g'(FA code)`` in the shared space, two (E, proj[-1])."""
        if not self.contrastive:
            raise ValueError("EdgeEncoder.projections: this encoder has no FA branch (built with fa_dim=None); "
                             "use reconstruct(), or build it with fa_dim set to the FA samples per pathway")
        return self.head(self.anat(anat)), self.head_fa(self.fa(fa))

    def reconstruct(self, anat: Tensor) -> Tensor:
        """The autoencoder's reconstruction, (E, anat_dim); only without an FA branch."""
        if self.contrastive:
            raise ValueError("EdgeEncoder.reconstruct: this encoder is contrastive (fa_dim="
                             f"{self.fa_dim}) and has no decoder; use projections(anat, fa)")
        return self.decoder(self.anat(anat))


class GeneratorConfig(BaseModel):
    """Training of the brain-network generator (paper values in the comments)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    epochs: int = Field(50, ge=1)  # paper: 1000
    batch_size: int = Field(50, ge=2)
    lr: float = Field(1e-3, gt=0)
    weight_decay: float = Field(5e-4, ge=0)
    momentum: float = Field(0.9, ge=0, lt=1)  # SGD of the contrastive edge encoder
    lr_step: int = Field(50, ge=1)  # the learning rate is multiplied by lr_gamma every lr_step epochs
    lr_gamma: float = Field(0.9, gt=0, le=1)
    temperature: float = Field(0.1, gt=0)
    node_hidden: tuple[int, ...] = (2048, 1024, 512, 128, 32)
    edge_hidden: tuple[int, ...] = (2048, 1024, 512, 128, 32)
    fa_hidden: tuple[int, ...] = (1024, 512, 128, 32)
    proj: tuple[int, ...] = (32, 32)
    out: int = Field(16, ge=1)
    max_edges_per_epoch: int | None = Field(4000, ge=2)  # None: every edge vector in every epoch


class Generator(nn.Module):
    """The trained generator: node autoencoder and edge encoder, applied without gradients.

    Shapes:
        nodes: (B, N, Dn) or (N, Dn), edges: (B, E, Da) or (E, Da)
        -> node_attr (B, N, out) or (N, out), edge_attr (B, E, out) or (E, out)
    """

    def __init__(self, node: NodeAutoencoder, edge: EdgeEncoder):
        super().__init__()
        self.node, self.edge = node, edge

    @classmethod
    def from_config(cls, config: GeneratorConfig, node_dim: int, anat_dim: int, fa_dim: int | None) -> Generator:
        """An untrained generator with the architecture of ``config`` (e.g. to load saved weights into)."""
        node = NodeAutoencoder(node_dim, config.node_hidden, config.out)
        edge = EdgeEncoder(anat_dim, fa_dim, config.edge_hidden, config.fa_hidden, config.out, config.proj)
        return cls(node, edge)

    @torch.no_grad()
    def forward(self, nodes: Tensor | np.ndarray, edges: Tensor | np.ndarray) -> tuple[Tensor, Tensor]:
        """16-d node and edge attributes (float16 or numpy inputs are cast to float32)."""
        device = next(self.parameters()).device
        nodes = _as_float(nodes, device, self.node.in_dim, "nodes")
        edges = _as_float(edges, device, self.edge.anat_dim, "edges")
        node_attr = self.node.encode(nodes.reshape(-1, nodes.shape[-1])).reshape(*nodes.shape[:-1], -1)
        edge_attr = self.edge.encode(edges.reshape(-1, edges.shape[-1])).reshape(*edges.shape[:-1], -1)
        return node_attr, edge_attr


def _as_float(x: Tensor | np.ndarray, device: torch.device, dim: int, name: str) -> Tensor:
    x = torch.as_tensor(np.asarray(x) if not isinstance(x, Tensor) else x).to(device=device, dtype=torch.float32)
    if x.dim() not in (2, 3) or x.shape[-1] != dim:
        raise ValueError(f"Generator: {name} must have shape (B, n, {dim}) or (n, {dim}) (the generator was "
                         f"trained on {dim} samples per vector); got {tuple(x.shape)}")
    return x


# ------------------------------------------------------------------------------------------ training


def train_generator(nodes: Sequence[np.ndarray], edges: Sequence[np.ndarray], edges_fa: Sequence[np.ndarray] | None,
                    config: GeneratorConfig | None = None, seed: int = 0, device: str | torch.device = "cpu",
                    progress: bool = False) -> tuple[Generator, dict]:
    """Train the node autoencoder and the edge encoder on a cohort; return the frozen generator.

    Args:
        nodes: per patient, the voxel samples of every region (the rows of all patients are pooled).
        edges: per patient, the anatomical voxel samples of every pathway.
        edges_fa: per patient, the FA samples of the same pathways (row ``e`` of ``edges_fa[p]`` pairs with
            row ``e`` of ``edges[p]``), or ``None``: no FA maps, the edge encoder becomes an autoencoder.
        config: training settings (default :class:`GeneratorConfig`).
        seed: seeds the initial weights and every shuffle; the same seed gives the same weights.
        device: where to train.
        progress: log each epoch's losses at INFO level.

    Returns:
        ``(generator, summary)``: the generator in eval mode with ``requires_grad`` off, and a dict with
        ``node_loss`` / ``edge_loss`` (last epoch's mean), ``node_loss_history`` / ``edge_loss_history``
        (per epoch), ``epochs``, ``edge_training`` (``"contrastive (FA)"`` or ``"autoencoder (no FA maps)"``),
        ``n_node_vectors``, ``n_edge_vectors`` and ``seconds``.

    Shapes:
        nodes[p]: (N, Dn) (paper: 90 x 4000), edges[p]: (E_p, Da), edges_fa[p]: (E_p, Df)
    """
    config = config or GeneratorConfig()
    start = time.perf_counter()
    x_node, x_anat, x_fa = _cohort_arrays(nodes, edges, edges_fa, device)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        generator = Generator.from_config(config, x_node.shape[1], x_anat.shape[1],
                                          None if x_fa is None else x_fa.shape[1]).to(device)
    shuffle = torch.Generator().manual_seed(seed)
    node_history = _train_node(generator.node, x_node, config, shuffle, progress)
    if x_fa is None:
        how = "autoencoder (no FA maps)"
        edge_history = _train_edge_autoencoder(generator.edge, x_anat, config, shuffle, progress)
    else:
        how = "contrastive (FA)"
        edge_history = _train_edge_contrastive(generator.edge, x_anat, x_fa, config, shuffle, progress)
    generator.eval().requires_grad_(False)
    summary = dict(node_loss=node_history[-1], edge_loss=edge_history[-1], node_loss_history=node_history,
                   edge_loss_history=edge_history, epochs=config.epochs, edge_training=how,
                   n_node_vectors=int(x_node.shape[0]), n_edge_vectors=int(x_anat.shape[0]),
                   seconds=time.perf_counter() - start)
    return generator, summary


def _train_node(model: NodeAutoencoder, x: Tensor, config: GeneratorConfig, shuffle: torch.Generator,
                progress: bool) -> list[float]:
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr, weight_decay=config.weight_decay,
                                 fused=_fused(model))
    return _fit(lambda idx: F.mse_loss(model(x[idx]), x[idx]), model, optimizer, x.shape[0], None, config,
                shuffle, "node autoencoder" if progress else None)


def _train_edge_autoencoder(model: EdgeEncoder, anat: Tensor, config: GeneratorConfig, shuffle: torch.Generator,
                            progress: bool) -> list[float]:
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr, weight_decay=config.weight_decay,
                                 fused=_fused(model))
    return _fit(lambda idx: F.mse_loss(model.reconstruct(anat[idx]), anat[idx]), model, optimizer, anat.shape[0],
                config.max_edges_per_epoch, config, shuffle, "edge autoencoder" if progress else None)


def _train_edge_contrastive(model: EdgeEncoder, anat: Tensor, fa: Tensor, config: GeneratorConfig,
                            shuffle: torch.Generator, progress: bool) -> list[float]:
    optimizer = torch.optim.SGD(model.parameters(), lr=config.lr, momentum=config.momentum,
                                weight_decay=config.weight_decay, fused=_fused(model))

    def loss(idx: Tensor) -> Tensor:
        return info_nce(*model.projections(anat[idx], fa[idx]), temperature=config.temperature)

    return _fit(loss, model, optimizer, anat.shape[0], config.max_edges_per_epoch, config, shuffle,
                "edge encoder (InfoNCE)" if progress else None)


def _fused(model: nn.Module) -> bool | None:
    """Fused optimizer kernels where torch has them: one pass over the ~22 M parameters of a paper-sized MLP
    instead of several (3-10x faster Adam steps on CPU, measured)."""
    return True if next(model.parameters()).device.type in ("cpu", "cuda") else None


def _fit(loss_fn, model: nn.Module, optimizer: torch.optim.Optimizer, n: int, limit: int | None,
         config: GeneratorConfig, shuffle: torch.Generator, label: str | None) -> list[float]:
    """Minibatch training; returns the mean loss of each epoch."""
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=config.lr_step, gamma=config.lr_gamma)
    model.train()
    history = []
    for epoch in range(config.epochs):
        total = 0.0
        order = torch.randperm(n, generator=shuffle)[:limit]
        for idx in _batches(order, config.batch_size):
            loss = loss_fn(idx)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            total += float(loss.detach()) * idx.numel()
        scheduler.step()
        history.append(total / order.numel())
        if label:
            log.info("%s: epoch %d/%d, loss %.5g", label, epoch + 1, config.epochs, history[-1])
    return history


def _batches(order: Tensor, batch_size: int) -> list[Tensor]:
    """Consecutive slices of ``order``; a last slice of one is merged into the one before."""
    chunks = list(torch.split(order, batch_size))
    if len(chunks) > 1 and chunks[-1].numel() < 2:
        chunks[-2:] = [torch.cat(chunks[-2:])]
    return chunks


def _cohort_arrays(nodes, edges, edges_fa, device) -> tuple[Tensor, Tensor, Tensor | None]:
    """Stack the per-patient arrays into float32 tensors, checking that they fit together."""
    if len(nodes) == 0 or len(edges) == 0:
        raise ValueError(f"train_generator: nodes and edges need at least one patient each; got {len(nodes)} "
                         f"node arrays and {len(edges)} edge arrays")
    x_node = _stack(nodes, "nodes", device)
    x_anat = _stack(edges, "edges", device)
    if x_node.shape[0] < 2 or x_anat.shape[0] < 2:
        raise ValueError("train_generator: needs at least two node and two edge vectors in the cohort; got "
                         f"{x_node.shape[0]} and {x_anat.shape[0]}")
    if edges_fa is None:
        return x_node, x_anat, None
    if len(edges_fa) != len(edges):
        raise ValueError(f"train_generator: edges_fa must hold one array per patient of edges ({len(edges)}); "
                         f"got {len(edges_fa)}. Pass edges_fa=None for a cohort without FA maps.")
    for p, (a, f) in enumerate(zip(edges, edges_fa)):
        if np.shape(f)[:1] != np.shape(a)[:1]:
            raise ValueError(f"train_generator: patient {p}: edges_fa has shape {np.shape(f)} and edges "
                             f"{np.shape(a)}; row e of both must describe the same pathway")
    return x_node, x_anat, _stack(edges_fa, "edges_fa", device)


def _stack(arrays: Sequence[np.ndarray], name: str, device) -> Tensor:
    shapes = [np.shape(a) for a in arrays]
    for p, shape in enumerate(shapes):
        if len(shape) != 2 or shape[1:] != shapes[0][1:]:
            raise ValueError(f"train_generator: every {name} array must be 2-D (vectors, samples) with the same "
                             f"number of samples; patient {p} has shape {shape}, patient 0 {shapes[0]}")
    return torch.as_tensor(np.concatenate([np.asarray(a, dtype=np.float32) for a in arrays])).to(device)
