"""``brainnet``: tumour image + tumour geometry + brain network, bi-level contrastive, population graph (paper 001).

Per fold, on the training patients only:

1. **Brain-network generator** (:mod:`gliotype.nn.netgen`): a node autoencoder and an edge encoder are
   trained, without labels, on the MNI-space voxel samples (stage ``brain_voxels``) of up to
   ``generator_patients`` training patients (those with an FA map first: the edge encoder is aligned to
   FA by InfoNCE; with no FA map in the fold it is trained as an autoencoder and the fit summary says
   so), then frozen. It turns every patient's samples into a 90-node graph with 16-d node and edge
   attributes; the graphs are cached per patient (``CACHE/brain_network/<patient>/<generator>.npz``).
2. **Encoders** (:class:`gliotype.nn.multimodal.MultiModal`) on ``1 - classifier_fraction`` of the
   training patients (stratified): cross-entropy of the MLP head on the concatenated features plus
   ``contrastive_weight`` x the bi-level contrastive loss (eq. 7, tau 0.1, lambda 0.8), with the
   validation split for early stopping.
3. **Classifiers** on the features of the other ``classifier_fraction`` (0.5, the paper's halves): the
   population graph (transductive GAT, eq. 8; the test patients join the graph unlabelled at prediction
   time), an MLP and an SVM (:mod:`gliotype.methods.feature_heads`). ``classifier`` picks which one is
   the prediction; every head is saved in ``head_predictions.csv`` (``encoder`` is the MLP head trained
   with the encoders).

Variants (paper Table 4) are configurations, named in :data:`VARIANTS` and run together by
``gliotype ablate``. Deviations from the paper, also in the README: the 2,309-pathway tractography
atlas is replaced by white-matter tubes between AAL centroids (or a user atlas); AdamW at a constant
learning rate with early stopping instead of SGD for 1000 epochs; generator epochs 50 instead of 1000.
"""

from __future__ import annotations

import logging
from typing import Literal

import numpy as np
import torch
from pydantic import Field, model_validator

from gliotype.losses import bilevel_contrastive
from gliotype.methods.feature_heads import POPULATION_CHOICES, PopulationChoice, feature_heads, population_needs
from gliotype.methods.monai3d import Image3DConfig
from gliotype.methods.pointgnn import GNN_PATIENCE, PointFields
from gliotype.methods.brainnet_graphs import SCALE_KEYS, attribute_scale, digest, scaled, split_state
from gliotype.methods.registry import register_method
from gliotype.methods.rotation import RotatingMethod, rotated_classes
from gliotype.methods.torch_method import TorchMethod
from gliotype.nn.multimodal import ENCODERS, MultiModal
from gliotype.nn.netgen import Generator, GeneratorConfig, train_generator
from gliotype.nn.population import PopulationConfig
from gliotype.prepare.cache import fingerprint, load_arrays, save_arrays
from gliotype.train.checkpoint import load_checkpoint, save_checkpoint
from gliotype.train.fit import torch_device

log = logging.getLogger(__name__)

Encoder = Literal["image", "geometry", "network"]

VARIANTS: dict[str, dict] = {
    # paper Table 4: single encoders + MLP, pairs with and without L_contr, no attention, no L_multi
    "image": {"encoders": ["image"], "classifier": "encoder", "classifier_fraction": 0.0},
    "geometry": {"encoders": ["geometry"], "classifier": "encoder", "classifier_fraction": 0.0},
    "network": {"encoders": ["network"], "classifier": "encoder", "classifier_fraction": 0.0},
    "image+geometry": {"encoders": ["image", "geometry"], "contrastive": False, "classifier": "encoder",
                       "classifier_fraction": 0.0},
    "network+geometry": {"encoders": ["geometry", "network"], "contrastive": False, "classifier": "encoder",
                         "classifier_fraction": 0.0},
    "image+network": {"encoders": ["image", "network"], "contrastive": False, "classifier": "encoder",
                      "classifier_fraction": 0.0},
    "image+geometry+contrastive": {"encoders": ["image", "geometry"], "classifier": "encoder",
                                   "classifier_fraction": 0.0},
    "network+geometry+contrastive": {"encoders": ["geometry", "network"], "classifier": "encoder",
                                     "classifier_fraction": 0.0},
    "image+network+contrastive": {"encoders": ["image", "network"], "classifier": "encoder",
                                  "classifier_fraction": 0.0},
    "no-attention": {"attention": False, "classifier": "encoder", "classifier_fraction": 0.0},
    "no-contrastive": {"contrastive": False, "classifier": "encoder", "classifier_fraction": 0.0},
    "full-mlp-head": {"classifier": "encoder", "classifier_fraction": 0.0},
    # paper Table 3: the full model's features classified by the population graph, an MLP, an SVM
    "full": {},
    "full-mlp": {"classifier": "mlp"},
    "full-svm": {"classifier": "svm"},
    # paper Table 2: the population graph's node and edge features
    **{f"population-{c}": {"population": c} for c in POPULATION_CHOICES},
    # our additions turned off: the paper's network encoder and population GAT as written
    "paper-network-encoder": {"region_identity": 0, "pathway_readout": 0},
    "paper-population-gat": {"population_residual": False},
}
"""Named configurations of ``brainnet`` (method options to apply, see ``gliotype ablate``)."""


class BrainNetConfig(Image3DConfig, PointFields):
    batch_size: int = Field(20, ge=2, description="patients per batch (paper: 20; the contrastive loss needs >= 2)")
    patience: int = Field(GNN_PATIENCE, ge=1, description="epochs without validation improvement before stopping")
    dropout: float = Field(0.3, ge=0, lt=1)
    encoders: tuple[Encoder, ...] = Field(ENCODERS, min_length=1, description="encoders to train (Table 4 ablations)")
    attention: bool = Field(True, description="hierarchical (edge and node) attention in the network encoder")
    contrastive: bool = Field(True, description="add the bi-level contrastive loss L_multi")
    contrastive_weight: float = Field(1.0, ge=0)
    temperature: float = Field(0.1, gt=0, description="contrastive temperature tau (paper 0.1)")
    lam: float = Field(0.8, ge=0, le=1, description="weight of the tumour level in L_multi (paper 0.8)")
    edge_floor: float = Field(0.0, ge=0, le=1, description="edge attention of pathways crossed by no tumour point")
    image_channels: tuple[int, ...] = Field((64, 128, 128, 256, 256), min_length=1)
    gat_channels: tuple[int, ...] = Field((64, 128, 128, 256, 256, 256), min_length=1)
    region_identity: int = Field(16, ge=0, description="size of the learnt region embedding in each node's input "
                                                      "(0: the paper's encoder)")
    pathway_readout: int = Field(1, ge=0, description="values per pathway mapped linearly onto the network latent "
                                                      "(0: the paper's encoder)")
    # stage brain_voxels (registration to MNI152 and the atlas)
    transform: Literal["SyN", "Affine", "Rigid"] = "SyN"
    min_dice: float = Field(0.8, ge=0, le=1, description="least brain-mask Dice of a successful registration")
    max_distance_mm: float = Field(40.0, gt=0, description="longest centroid distance of a tube pathway")
    radius_mm: float = Field(4.0, gt=0, description="radius of a tube pathway")
    n_voxels: int = Field(1000, ge=4, description="voxels sampled per region or pathway, per sequence")
    tract_atlas: str | None = Field(None, description="4-D NIfTI of pathway ROIs replacing the tubes")
    tract_pairs: str | None = Field(None, description="CSV region_a,region_b naming each tract_atlas volume")
    # the brain-network generator
    generator_patients: int = Field(20, ge=1, description="training patients the generator learns from (paper 20)")
    generator_epochs: int = Field(50, ge=1, description="generator epochs (paper 1000)")
    generator_hidden: tuple[int, ...] = Field((2048, 1024, 512, 128, 32), min_length=1)
    generator_fa_hidden: tuple[int, ...] = Field((1024, 512, 128, 32), min_length=1)
    # the classifiers on the learnt features
    classifier: Literal["population", "mlp", "svm", "encoder"] = "population"
    classifier_fraction: float = Field(0.5, ge=0, le=0.9, description="training patients kept from the encoders "
                                                                        "for the feature classifiers")
    population: PopulationChoice = "uTB-rB"
    theta: float = Field(0.5, ge=-1, le=1, description="least correlation of a population-graph edge")
    population_epochs: int = Field(200, ge=1)
    population_residual: bool = Field(True, description="linear skip around each population GATConv (paper: none)")

    @model_validator(mode="after")
    def _consistent(self):
        if self.classifier != "encoder" and self.classifier_fraction == 0:
            raise ValueError(f"classifier={self.classifier!r} is fit on held-out training patients: set "
                             "classifier_fraction > 0 (paper 0.5) or classifier='encoder'")
        if self.classifier == "population":
            have = {"tumour" if {"image", "geometry"} & set(self.encoders) else None,
                    "brain" if "network" in self.encoders else None}
            if not population_needs(self.population) <= have:
                raise ValueError(f"population={self.population!r} needs features of encoders that are off "
                                 f"(encoders={list(self.encoders)}); choose another population or classifier")
        return self

    def generator_config(self) -> GeneratorConfig:
        return GeneratorConfig(epochs=self.generator_epochs, node_hidden=self.generator_hidden,
                               edge_hidden=self.generator_hidden, fa_hidden=self.generator_fa_hidden)


@register_method("brainnet", config=BrainNetConfig, modalities=("mri", "seg"))
class BrainNet(RotatingMethod):
    """Image + geometry + brain-network encoders, bi-level contrastive loss, population graph (paper 001)."""

    needs = ("mri", "seg")
    keeps_patient_ids = True

    @property
    def stages(self) -> tuple[str, ...]:
        wanted = {"image": "tumour_image", "geometry": "tumour_geometry", "network": "brain_voxels"}
        return tuple(wanted[e] for e in ENCODERS if e in self.config.encoders)

    def item(self, arrays):
        out = {}
        if "tumour_image" in arrays:
            out["image"] = torch.from_numpy(arrays["tumour_image"]["image"].astype(np.float32))
        if "tumour_geometry" in arrays:
            out["points"] = torch.from_numpy(arrays["tumour_geometry"]["points"].astype(np.float32))
        if "brain_voxels" in arrays:
            voxels = arrays["brain_voxels"]
            out["nodes"], out["edges"] = torch.from_numpy(voxels["nodes"]), torch.from_numpy(voxels["edges"])
            if "edges_fa" in voxels:
                out["edges_fa"] = torch.from_numpy(voxels["edges_fa"])
            out["point_edges"] = torch.from_numpy(voxels["point_edges"].astype(np.int64)).reshape(-1, 2)
            out["pairs"] = torch.from_numpy(voxels["pairs"].astype(np.int64))
        return out

    # --- the network ---------------------------------------------------------------------------

    def build(self, n_classes: int) -> MultiModal:
        cfg = self.config
        return MultiModal(cfg.encoders, n_classes, getattr(self, "_pairs", None), getattr(self, "_n_nodes", None),
                          image_channels=cfg.image_channels, gat_channels=cfg.gat_channels,
                          region_identity=cfg.region_identity, pathway_readout=cfg.pathway_readout,
                          max_neighbors=cfg.max_neighbors, attention=cfg.attention, edge_floor=cfg.edge_floor,
                          dropout=cfg.dropout)

    _KEYS = ("image", "points", "node_attr", "edge_attr")

    def collate(self, batch):
        items, ys = zip(*batch)
        out = {k: torch.stack([it[k] for it in items]) for k in self._KEYS if k in items[0]}
        if "point_edges" in items[0]:
            out["point_edges"] = torch.cat([
                torch.cat([torch.full((len(it["point_edges"]), 1), b, dtype=torch.long), it["point_edges"]], dim=1)
                for b, it in enumerate(items)])
        return out, torch.tensor(ys)

    def loss(self, model, batch, y, weight):
        out = model(batch)
        logits = out["logits"]
        loss = torch.nn.functional.cross_entropy(logits, y, weight=weight.to(logits.device))
        if self.config.contrastive and len(y) >= 2 and len(self.config.encoders) >= 2:
            multi = bilevel_contrastive(out.get("z_image"), out.get("z_points"), out.get("z_brain"),
                                        out.get("z_tumour"), temperature=self.config.temperature, lam=self.config.lam)
            loss = loss + self.config.contrastive_weight * multi
        return loss, logits

    def heads(self, model, batch):
        return {"prediction": torch.softmax(model(batch)["logits"].float(), 1)}

    def logits(self, model, batch):
        return model(batch)["logits"]

    # --- fitting --------------------------------------------------------------------------------

    def fit(self, train, y_train, val, y_val, n_classes, ctx):
        cfg, y_train = self.config, np.asarray(y_train)
        state: dict[str, torch.Tensor] = {}
        summary: dict = {}
        if "network" in cfg.encoders:
            generator, summary["generator"] = self._generator(train, ctx)
            self._pairs, self._n_nodes = train[0]["pairs"], len(train[0]["nodes"])
            train, val = self._with_graphs(train, generator), self._with_graphs(val, generator)
            self._scale = attribute_scale(train)
            train, val = scaled(train, self._scale), scaled(val, self._scale)
            state.update({f"graph.{k}": v for k, v in self._scale.items()})
            state.update({f"generator.{k}": v for k, v in generator.state_dict().items()})
            state["graph.pairs"], state["graph.n_nodes"] = self._pairs, torch.tensor(self._n_nodes)
            state["graph.dims"] = torch.tensor([generator.node.in_dim, generator.edge.anat_dim,
                                                generator.edge.fa_dim or 0])
        encoder_idx, classifier_idx = split_for_classifiers(y_train, cfg.classifier_fraction, ctx.seed, n_classes)
        self._rotated = rotated_classes(y_train[encoder_idx], n_classes, cfg.augment)
        weights = super(RotatingMethod, self).fit([train[i] for i in encoder_idx], y_train[encoder_idx], val, y_val,
                                                  n_classes, ctx)
        summary.update(self.fit_summary, n_encoder_patients=len(encoder_idx), n_classifier_patients=len(classifier_idx))
        self.fit_summary = summary
        state.update({f"model.{k}": v for k, v in weights.items()})
        if len(classifier_idx):
            model = TorchMethod.load_model(self, weights, n_classes, ctx.device)
            features = self._features(model, [train[i] for i in classifier_idx])
            state.update({f"classifier.{k}": torch.from_numpy(v) for k, v in features.items()})
            state["classifier.y"] = torch.from_numpy(y_train[classifier_idx].astype(np.int64))
            state["classifier.seed"] = torch.tensor(ctx.seed)
        return state

    def _generator(self, train, ctx):
        """The fold's frozen generator: trained on up to ``generator_patients`` training patients, cached in the
        fold's work folder so a resumed fold reuses it."""
        cfg = self.config
        path = ctx.work_dir / "generator.safetensors"
        dims = (train[0]["nodes"].shape[1], train[0]["edges"].shape[1])
        rng = np.random.default_rng(ctx.seed)
        order = rng.permutation(len(train))
        with_fa = [i for i in order if "edges_fa" in train[i]]
        chosen = (with_fa + [i for i in order if "edges_fa" not in train[i]])[:cfg.generator_patients]
        fa = [train[i]["edges_fa"].numpy() for i in chosen if "edges_fa" in train[i]]
        fa_dim = fa[0].shape[1] if fa else None
        if path.is_file() and path.with_suffix(".json").is_file():
            weights, meta = load_checkpoint(path)
            generator = Generator.from_config(cfg.generator_config(), *dims, meta["fa_dim"])
            generator.load_state_dict(weights)
            return generator.eval(), meta["summary"]
        edge_patients = [i for i in chosen if "edges_fa" in train[i]] if fa else chosen
        generator, summary = train_generator(
            [train[i]["nodes"].numpy() for i in chosen], [train[i]["edges"].numpy() for i in edge_patients],
            fa or None, cfg.generator_config(), seed=ctx.seed, device=torch_device(ctx.device))
        summary = {**summary, "patients": len(chosen), "patients_with_fa": len(fa)}
        if not fa:
            log.warning("brainnet: no FA map among the generator's %d patients: the edge encoder is trained as an "
                        "autoencoder of the anatomical voxels, without the FA branch", len(chosen))
        save_checkpoint(path, generator.state_dict(), {"fa_dim": fa_dim, "summary": summary})
        return generator.eval(), summary

    def _with_graphs(self, items, generator) -> list[dict]:
        """Items with the generator's 16-d node and edge attributes, cached per patient under the generator's
        fingerprint (``CACHE/brain_network/<patient>/<fingerprint>.npz``)."""
        key = fingerprint("brain_network", 1, {"generator": digest(generator)}, [])
        cache = getattr(self, "_cache", None)
        out = []
        for it in items:
            path = cache / "brain_network" / it["patient_id"] / f"{key}.npz" if cache and "patient_id" in it else None
            if path is not None and path.is_file():
                arrays, _ = load_arrays(path)
            else:
                with torch.no_grad():
                    node_attr, edge_attr = generator(it["nodes"].float()[None], it["edges"].float()[None])
                arrays = {"node_attr": node_attr[0].numpy(), "edge_attr": edge_attr[0].numpy()}
                if path is not None:
                    save_arrays(path, arrays, {"stage": "brain_network", "generator": key})
            out.append({**it, "node_attr": torch.from_numpy(arrays["node_attr"]).float(),
                        "edge_attr": torch.from_numpy(arrays["edge_attr"]).float()})
        return out

    @torch.no_grad()
    def _run(self, model, items) -> dict[str, np.ndarray]:
        dev = next(model.parameters()).device
        out: dict[str, list] = {}
        for start in range(0, len(items), self.config.batch_size):
            batch, _ = self.collate([(it, -1) for it in items[start:start + self.config.batch_size]])
            res = model({k: v.to(dev) for k, v in batch.items()})
            res["prob"] = torch.softmax(res["logits"].float(), 1)
            for key in ("prob", "u_tumour", "u_brain"):
                if key in res:
                    out.setdefault(key, []).append(res[key].float().cpu().numpy())
        return {k: np.concatenate(v).astype(np.float64) for k, v in out.items()}

    def _features(self, model, items) -> dict[str, np.ndarray]:
        res = self._run(model, items)
        return {k.removeprefix("u_"): v.astype(np.float32) for k, v in res.items() if k.startswith("u_")}

    # --- prediction -----------------------------------------------------------------------------

    def load_generator(self, state, device="cpu"):
        parts = split_state(state)
        nodes, edges, fa_dim = (int(d) for d in parts["graph"]["dims"])
        generator = Generator.from_config(self.config.generator_config(), nodes, edges, fa_dim or None)
        generator.load_state_dict(parts["generator"])
        return generator.to(device).eval()

    def load_model(self, state, n_classes, device="auto"):
        parts = split_state(state)
        if "graph" in parts:
            self._pairs, self._n_nodes = parts["graph"]["pairs"], int(parts["graph"]["n_nodes"])
        return super().load_model(parts["model"], n_classes, device)

    def graphs(self, state, inputs):
        """``inputs`` with the standardised node and edge attributes of the state's generator (network encoder only)."""
        if "network" not in self.config.encoders:
            return list(inputs)
        graph = split_state(state)["graph"]
        return scaled(self._with_graphs(inputs, self.load_generator(state)), {k: graph[k] for k in SCALE_KEYS})

    def predict_heads(self, state, inputs, n_classes, device="auto"):
        parts = split_state(state)
        model = self.load_model(state, n_classes, device)
        res = self._run(model, self.graphs(state, inputs))
        heads = {"encoder": res["prob"]}
        if "classifier" in parts:
            cls = parts["classifier"]
            train = {k: cls[k].numpy().astype(np.float64) if k in cls else None for k in ("tumour", "brain")}
            test = {k: res.get(f"u_{k}") for k in ("tumour", "brain")}
            pop = PopulationConfig(threshold=self.config.theta, epochs=self.config.population_epochs,
                                   residual=self.config.population_residual)
            heads.update(feature_heads(train, cls["y"].numpy(), test, n_classes, population=self.config.population,
                                       config=pop, seed=int(cls["seed"]), device=str(torch_device(device))))
        return {"prediction": heads[self.config.classifier], **heads}


def split_for_classifiers(y: np.ndarray, fraction: float, seed: int, n_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """(encoder, classifier) indices of the training patients: ``fraction`` of each class to the classifiers.

    Raises:
        ValueError: if either part would lack a class.
    """
    if fraction == 0:
        return np.arange(len(y)), np.array([], dtype=int)
    rng = np.random.default_rng(seed + 7)
    encoder, classifier = [], []
    for c in range(n_classes):
        members = rng.permutation(np.flatnonzero(y == c))
        k = int(round(fraction * len(members)))
        if len(members) and (k == 0 or k == len(members)):
            raise ValueError(f"brainnet: class {c} has {len(members)} training patients, too few to split between "
                             f"the encoders and the feature classifiers (classifier_fraction={fraction}); use more "
                             "patients, fewer folds, or classifier='encoder' with classifier_fraction=0")
        classifier += list(members[:k])
        encoder += list(members[k:])
    return np.sort(encoder), np.sort(classifier)
