"""``wsi-rna`` (paper 003): stain-filtered histology patches aligned with the RNA-seq of the same lineage.

Data. A patient's RNA samples are the rows of ``rnaseq.tsv`` (``sample_id``; one per lineage, or the
patient id when the table has one row per patient). Each histology file belongs to the sample whose id is
the longest prefix of the file's name (``SYN-0001-L2_roi1.png`` -> ``SYN-0001-L2``; TCGA's
``TCGA-DU-6407-01A-01-TS1.svs`` -> ``TCGA-DU-6407-01A``); with one sample, every file is that sample's. A
file that matches no sample of a patient with several is left out and listed in the fingerprint.
Patches come from the ``stain_patches`` stage (256 px, HSL brown score or H&E tissue score > 20%).

Targets. ``lineage``: an RNA sample and the patches of its lineage are the positive pairs; ``patient``:
every sample and patch of a patient are. Either way the folds hold out **patients** (so their lineages too):
no patch of a tested patient, nor its RNA, is seen in training.

Training (one fold): gene tokens are built once from every gene and the PPI (no labels involved); the
expression scaler is fitted on the training samples only. ``init="pretrained"`` first trains each encoder
alone (RNA: masked reconstruction + lineage InfoNCE; patches: batch-hard triplet by lineage) for
``pretrain_epochs``; ``freeze_rna`` / ``freeze_patch`` then keep an encoder fixed (the paper's Table 1).
Joint training draws ``lineages_per_batch`` lineages per step, whole patients at a time (a patient's other
lineages are then among each lineage's negatives, so matching cannot rest on patient-level traits such as
the genotype), with ``patches_per_lineage`` patches each (drawn with replacement when a lineage has fewer),
and minimises the enabled losses of
:class:`~gliotype.nn.image_rna.MultimodalModel`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
import torch
from pydantic import Field
from torch.nn import functional as F

from gliotype.cohort import Cohort
from gliotype.methods.base import MethodConfig, Prepared
from gliotype.methods.lazy import CachedRows
from gliotype.methods.leakage import expression_features
from gliotype.methods.registry import RETRIEVAL_TARGETS, register_method
from gliotype.nn.image_rna import MultimodalConfig, MultimodalModel
from gliotype.nn.patch_encoder import PatchEncoder, PatchEncoderConfig
from gliotype.nn.rna import RNAEncoder
from gliotype.prepare import get_stage, load_prepared, run_stage
from gliotype.prepare.stage import default_cache
from gliotype.rna.prepare import ExpressionScaler, restrict_tokens
from gliotype.rna.tokens import GeneTokens, TokenConfig, cohort_tokens
from gliotype.train.fit import torch_device

log = logging.getLogger(__name__)


class WsiRnaConfig(MethodConfig):
    """Patches, gene tokens, encoders, losses and training of ``wsi-rna`` (paper / author values where known)."""

    # patches (stage ``stain_patches``)
    size: int = Field(256, ge=16, description="patch side cut from the slide, pixels")
    score: Literal["brown", "tissue"] = Field("tissue", description="brown: DAB IHC (paper); tissue: H&E")
    threshold: float = Field(0.2, ge=0, le=1)
    max_patches_per_file: int = Field(64, ge=1)
    # gene tokens
    groups: Literal["ppi", "chromosome"] = "ppi"
    ppi: str | None = Field(None, description="PPI file; default the cohort's ppi.csv")
    chromosomes: str | None = Field(None, description="gene -> chromosome table, for groups=chromosome")
    n_tokens: int = Field(7, ge=1)
    # encoders (RNA: author code; patches: a small ViT over 16x16 sub-patches)
    rna_dim: int = Field(128, ge=8)
    rna_heads: int = Field(8, ge=1)
    image_size: int = Field(256, ge=16, description="patches are resized to this side before the ViT")
    patch: int = Field(16, ge=2)
    embed: int = Field(192, ge=8)
    depth: int = Field(4, ge=1)
    heads: int = Field(3, ge=1)
    projection: int = Field(64, ge=2)
    # losses (paper's best: contrastive + matching, no decoder)
    contrastive: bool = True
    matching: bool = True
    decoder: bool = False
    rna_pretext: bool = False
    patch_triplet: bool = False
    temperature: float = Field(0.07, gt=0, description="contrastive temperature (author 0.005; 0.07 learnt faster)")
    # Table 1 variants
    init: Literal["random", "pretrained"] = "random"
    pretrain_epochs: int = Field(10, ge=1)
    freeze_rna: bool = False
    freeze_patch: bool = False
    # training (author: AdamW 1e-4, wd 0.02, batch 32)
    epochs: int = Field(30, ge=1)
    lineages_per_batch: int = Field(16, ge=2)
    patches_per_lineage: int = Field(2, ge=1)
    lr: float = Field(3e-4, gt=0, description="author 1e-4 with an ImageNet ViT; 3e-4 learns faster from scratch")
    weight_decay: float = Field(0.02, ge=0)
    augment: bool = True
    # evaluation
    gallery: Literal["held_out", "all"] = Field("held_out", description="RNA samples a patch is matched against")
    top_genes: int = Field(15, ge=1)


@dataclass
class Lineages:
    """The RNA samples and patches of some patients, flattened.

    Shapes:
        expression: (N, G) raw values (genes of ``genes``); patches: M uint8 patches (S, S, 3), read from
        the cache on access (``patches[indices] -> (k, S, S, 3)``); patch_sample: (M,) index into the N samples.
    """

    samples: list[str]
    patients: list[str]
    genes: list[str]
    expression: np.ndarray
    patches: CachedRows
    patch_sample: np.ndarray
    patch_ids: list[str]

    @classmethod
    def of(cls, items: list[dict]) -> Lineages:
        offsets = np.cumsum([0] + [len(i["samples"]) for i in items])
        return cls([s for i in items for s in i["samples"]], [i["patient_id"] for i in items for _ in i["samples"]],
                   list(items[0]["expression"].columns), np.concatenate([i["expression"].to_numpy() for i in items]),
                   CachedRows.concat([i["patches"] for i in items]),
                   np.concatenate([i["patch_sample"] + o for i, o in zip(items, offsets)]),
                   [p for i in items for p in i["patch_ids"]])

    def ids(self, target: str) -> np.ndarray:
        """The id that makes pairs positive: each sample's own index (lineage) or its patient's (patient)."""
        return np.arange(len(self.samples)) if target == "lineage" else pd.factorize(np.array(self.patients))[0]


def assign_files(files: list[str], samples: list[str]) -> dict[str, str | None]:
    """Each histology file's sample: the longest sample id that prefixes the file name (any, with one sample).

    >>> assign_files(["P-L2_roi1.png", "P-L1_roi1.png", "other.png"], ["P-L1", "P-L2"])
    {'P-L2_roi1.png': 'P-L2', 'P-L1_roi1.png': 'P-L1', 'other.png': None}
    """
    if len(samples) == 1:
        return dict.fromkeys(files, samples[0])
    by_length = sorted(samples, key=len, reverse=True)
    return {f: next((s for s in by_length if f.startswith(s)), None) for f in files}


@register_method("wsi-rna", config=WsiRnaConfig, modalities=("histology", "rnaseq"), targets=RETRIEVAL_TARGETS)
class WsiRna:
    """Histology patch <-> RNA-seq alignment and retrieval (paper 003)."""

    needs = ("histology", "rnaseq")
    stages = ("stain_patches",)

    def __init__(self, config: WsiRnaConfig):
        self.config = config
        self.tokens: GeneTokens | None = None
        self.genes: list[str] = []
        self.fingerprint: dict = {}
        self.fit_summary: dict = {}
        self._scaler: dict = {}
        self._cohort_tokens: GeneTokens | None = None  # from prepare: every gene; each fit keeps its scaler's genes
        self._token_error = "wsi-rna: no gene tokens; call prepare(cohort, ...) before fit"

    # --- inputs ---------------------------------------------------------------------------------

    def prepare(self, cohort: Cohort, patient_ids: list[str], cache_dir: Path | None = None, workers: int = 1,
                progress: bool = False) -> Prepared:
        """Each patient's RNA samples and stain-filtered patches (assigned to samples); builds the gene tokens."""
        table = cohort.rnaseq(patient_ids)
        table, dropped = expression_features(table)
        genes = [c for c in table.columns if c != "patient_id"]
        stage_config = get_stage("stain_patches").config_type(
            **{k: getattr(self.config, k) for k in ("size", "score", "threshold", "max_patches_per_file")})
        cache = Path(cache_dir) if cache_dir else default_cache(cohort)
        result = run_stage("stain_patches", cohort, patient_ids, stage_config, cache_dir=cache, workers=workers,
                           progress=progress)
        inputs, failed, unassigned = {}, dict(result.failed), {}
        for pid, path in result.done.items():
            rows = table[table.patient_id == pid]
            if rows.empty:
                failed[pid] = f"{pid}: no RNA-seq sample in {cohort.rnaseq_path.name}; add its row or leave it out"
                continue
            arrays, meta = load_prepared(path, mmap=True)  # the patches stay on disk: CachedRows reads them
            samples = [str(s) for s in rows.index]
            owner = assign_files(meta["files"], samples)
            lost = [f for f, s in owner.items() if s is None]
            if lost:
                unassigned[pid] = lost
            sample_of_patch = np.array([samples.index(owner[meta["files"][i]]) if owner[meta["files"][i]] else -1
                                        for i in arrays["source"]])
            keep = sample_of_patch >= 0
            if not keep.any():
                failed[pid] = (f"{pid}: no histology file name starts with one of its RNA sample ids {samples}; "
                               "name files <sample_id>_*.png (or keep one RNA sample per patient)")
                continue
            origins = arrays["origins"][keep]
            inputs[pid] = {"patient_id": pid, "samples": samples, "expression": rows[genes].astype(np.float32),
                           "patches": CachedRows([(path, np.flatnonzero(keep))], "patches"),
                           "patch_sample": sample_of_patch[keep],
                           "patch_ids": [f"{meta['files'][s]}@{r},{c}" for s, (r, c) in
                                         zip(arrays["source"][keep], origins)]}
        self.fingerprint = {"rnaseq": cohort.rnaseq_path.name, "dropped_label_columns": dropped,
                            "unassigned_histology_files": unassigned, "patches": stage_config.model_dump(),
                            "tokens": self._tokens(cohort, genes)}
        return Prepared(inputs, failed, self.fingerprint)

    def _tokens(self, cohort: Cohort, genes: list[str]) -> dict:
        """Build the tokens of every gene for :meth:`fit`; returns their count and sizes. Applying a fitted model
        needs none (they are in its sidecar), so a cohort without a PPI is refused only by ``fit``."""
        c = self.config
        try:
            config = TokenConfig(grouping=c.groups, n_tokens=c.n_tokens)
            self._cohort_tokens, source = cohort_tokens(cohort, genes, config, c.ppi, c.chromosomes, "wsi-rna")
        except (ValueError, FileNotFoundError) as err:
            self._cohort_tokens, self._token_error = None, str(err)
            return {"error": str(err)}
        log.info("wsi-rna gene tokens from %s: %s", source, self._cohort_tokens.summary())
        return {"source": source, "count": len(self._cohort_tokens.names), "sizes": list(self._cohort_tokens.sizes)}

    # --- model ------------------------------------------------------------------------------------

    def encoders(self, genes: list[str]) -> tuple[RNAEncoder, PatchEncoder]:
        """Freshly initialised encoders: RNA over ``genes`` (the scaler's), patches as configured."""
        c = self.config
        rna = RNAEncoder.from_tokens(self.tokens, genes, dim=c.rna_dim, heads=c.rna_heads, projection=c.projection)
        return rna, PatchEncoder(PatchEncoderConfig(image_size=c.image_size, patch=c.patch, embed=c.embed,
                                                    depth=c.depth, heads=c.heads, projection=c.projection))

    def joint(self, rna: RNAEncoder, patch: PatchEncoder, **losses) -> MultimodalModel:
        """The multimodal model over two encoders; ``losses`` override the configured switches and freezing."""
        shared = {k: getattr(self.config, k) for k in MultimodalConfig.model_fields if k in WsiRnaConfig.model_fields}
        return MultimodalModel(rna, patch, MultimodalConfig(**{**shared, **losses}))

    def images(self, patches: np.ndarray, device: torch.device) -> torch.Tensor:
        """uint8 patches -> float images in [0, 1] at ``image_size``. Shapes: (M, S, S, 3) -> (M, 3, s, s)."""
        x = torch.from_numpy(np.ascontiguousarray(patches)).to(device).permute(0, 3, 1, 2).float() / 255.0
        side = self.config.image_size
        return x if x.shape[-1] == side else F.interpolate(x, size=(side, side), mode="area")

    def sidecar(self) -> dict:
        return {"tokens": self.tokens.to_json(), "genes": self.genes, "scaler": self._scaler}

    def restore(self, sidecar: dict) -> None:
        self.tokens = GeneTokens.from_json(sidecar["tokens"])
        self.genes, self._scaler = list(sidecar["genes"]), dict(sidecar["scaler"])

    # --- training -------------------------------------------------------------------------------

    def fit(self, data: Lineages, target: str, seed: int = 0, device: str = "auto") -> dict[str, torch.Tensor]:
        """Fit the scaler (training samples only), the tokens and the model on one fold's training lineages."""
        if self._cohort_tokens is None:
            raise ValueError(self._token_error)
        c, dev = self.config, torch_device(device)
        torch.manual_seed(seed)
        rng, generator = np.random.default_rng(seed), torch.Generator().manual_seed(seed)
        expression = pd.DataFrame(data.expression, columns=data.genes)
        scaler = ExpressionScaler().fit(expression)
        self.genes, self.tokens = list(scaler.genes), restrict_tokens(self._cohort_tokens, scaler.genes)
        tensors, self._scaler = scaler.state()
        x = torch.from_numpy(scaler.transform(expression)).to(dev)
        ids = torch.from_numpy(data.ids(target)).to(dev)
        rna, patch = self.encoders(self.genes)
        if c.init == "pretrained":  # each encoder alone first, unfrozen; then the joint model freezes as configured
            alone = self.joint(rna, patch, contrastive=False, matching=False, decoder=False, rna_pretext=True,
                               patch_triplet=True, freeze_rna=False, freeze_patch=False).to(dev)
            self._train(alone, x, ids, data, c.pretrain_epochs, rng, generator)
        model = self.joint(rna, patch).to(dev)
        self._train(model, x, ids, data, c.epochs, rng, generator)
        self.fit_summary = {"n_samples": len(data.samples), "n_patches": len(data.patch_ids),
                            "tokens": self.tokens.summary(), "genes": len(self.genes)}
        return {**{f"model.{k}": v.detach().cpu() for k, v in model.state_dict().items()},
                **{f"scaler.{k}": v for k, v in tensors.items()}}

    def _train(self, model: MultimodalModel, x: torch.Tensor, ids: torch.Tensor, data: Lineages, epochs: int,
               rng: np.random.Generator, generator: torch.Generator) -> None:
        """Epochs over the lineages with patches; a batch takes whole patients (all their lineages), so that a
        patient's other lineages are among each lineage's negatives and patient-level traits cannot match."""
        c = self.config
        params = [p for p in model.parameters() if p.requires_grad]
        optimiser = torch.optim.AdamW(params, lr=c.lr, weight_decay=c.weight_decay)
        by_sample = [np.flatnonzero(data.patch_sample == s) for s in range(len(x))]
        patient = pd.factorize(np.array(data.patients))[0]
        lineages = np.array([s for s, p in enumerate(by_sample) if len(p)])
        steps = epochs * max(1, len(lineages) // c.lineages_per_batch)
        schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimiser, T_max=steps)
        model.train()
        for _ in range(epochs):
            rank = rng.permutation(patient.max() + 1)[patient[lineages]] + rng.random(len(lineages))
            order = lineages[np.argsort(rank)]  # patients in random order, each one's lineages together
            for start in range(0, len(order) - 1, c.lineages_per_batch):
                chunk = order[start:start + c.lineages_per_batch]
                if len(chunk) < 2:
                    continue
                pick = np.concatenate([rng.choice(by_sample[s], c.patches_per_lineage,
                                                  replace=len(by_sample[s]) < c.patches_per_lineage) for s in chunk])
                batch = self.images(data.patches[pick], x.device)
                batch = augment(batch, generator) if c.augment else batch
                rows, owners = torch.from_numpy(chunk).to(x.device), torch.from_numpy(data.patch_sample[pick])
                loss, _ = model.loss(x[rows], ids[rows], batch, ids[owners.to(x.device)], generator=generator)
                optimiser.zero_grad(set_to_none=True)
                loss.backward()
                optimiser.step()
                schedule.step()

    # --- inference ------------------------------------------------------------------------------

    def load(self, state: dict[str, torch.Tensor], device: str = "auto") -> tuple[MultimodalModel, ExpressionScaler]:
        """The model (eval mode, on ``device``) and the scaler of a fitted state (after :meth:`restore`)."""
        model = self.joint(*self.encoders(self.genes))
        model.load_state_dict({k[len("model."):]: v for k, v in state.items() if k.startswith("model.")})
        scaler = ExpressionScaler.from_state({k[len("scaler."):]: v for k, v in state.items()
                                              if k.startswith("scaler.")}, self._scaler)
        return model.to(torch_device(device)).eval(), scaler

    @torch.no_grad()
    def embed_patches(self, model: MultimodalModel, patches: np.ndarray | CachedRows, batch: int = 64) -> np.ndarray:
        """Unit-norm projections of uint8 patches. Shapes: (M, S, S, 3) -> (M, projection)."""
        dev = next(model.parameters()).device
        return np.concatenate([model.embed_patches(self.images(patches[i:i + batch], dev)).cpu().numpy()
                               for i in range(0, len(patches), batch)])

    @torch.no_grad()
    def embed_rna(self, model: MultimodalModel, scaler: ExpressionScaler, data: Lineages
                  ) -> tuple[np.ndarray, np.ndarray]:
        """Unit-norm projections of the RNA samples and the scaled expression they were computed from.

        Shapes:
            -> (N, projection), (N, G') float32
        """
        x = scaler.transform(pd.DataFrame(data.expression, columns=data.genes))
        z = model.embed_rna(torch.from_numpy(x).to(next(model.parameters()).device))
        return z.cpu().numpy(), x


def augment(images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """The same random flip and quarter turn for the whole batch (histology has no orientation).

    Shapes:
        (B, 3, H, W) -> (B, 3, H, W) (H == W)
    """
    flip, turns = torch.randint(2, (1,), generator=generator).item(), torch.randint(4, (1,), generator=generator).item()
    images = images.flip(-1) if flip else images
    return torch.rot90(images, turns, dims=(-2, -1))
