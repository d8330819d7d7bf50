"""What every method provides to the training runner.

A method turns a cohort's patients into inputs (running the preparation stages it needs), fits a
state (a flat ``{name: tensor}`` dict, saved as safetensors) on training patients, and predicts class
probabilities from a state. The runner owns splits, resumption, files and metrics; methods own models.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict

from gliotype.cohort import Cohort


class MethodConfig(BaseModel):
    """Base of every method's configuration: typed, validated, YAML round-trip, never evaluated."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)


@dataclass
class Prepared:
    """A method's inputs for some patients, and the patients it could not prepare (with reasons)."""

    inputs: dict[str, Any]
    failed: dict[str, str]
    fingerprint: dict[str, Any]


@dataclass(frozen=True)
class Distributed:
    """How many processes fit one model, with Lightning's DDP: ``devices`` per node (a number or ``"auto"``),
    ``num_nodes``, and Lightning's ``strategy`` (``"auto"``, ``"ddp"``, ``"ddp_find_unused_parameters_true"`` ...).

    A method's ``batch_size`` is per process: one optimiser step sees ``devices * num_nodes * batch_size``
    patients. Under ``torchrun``, ``devices`` must equal ``--nproc_per_node`` and ``num_nodes`` ``--nnodes``.
    """

    devices: int | str = 1
    num_nodes: int = 1
    strategy: str = "auto"

    def __post_init__(self):
        if self.devices != "auto" and not (isinstance(self.devices, int) and self.devices >= 1):
            raise ValueError(f"devices must be a number of devices per node (>= 1) or 'auto', got {self.devices!r}")
        if not (isinstance(self.num_nodes, int) and self.num_nodes >= 1):
            raise ValueError(f"num_nodes must be a number of machines (>= 1), got {self.num_nodes!r}")

    def finding_unused_parameters(self) -> Distributed:
        """The same processes, with DDP told to look for parameters that a step leaves without a gradient
        (``rnaseq``'s pretraining: only the masked tokens' decoders get one), which it refuses otherwise:
        ``"ddp"``, or ``"auto"`` over more than one process, becomes ``"ddp_find_unused_parameters_true"``.
        Other strategies, and ``devices="auto"`` (pass the strategy yourself), are kept."""
        many = isinstance(self.devices, int) and self.devices * self.num_nodes > 1
        if self.strategy == "ddp" or (self.strategy == "auto" and many):
            return replace(self, strategy="ddp_find_unused_parameters_true")
        return self


@dataclass
class FitContext:
    """What a fit needs beyond the data: where to keep resumable state, seed, epochs, device, progress, and
    how it uses the hardware (``distributed`` processes, ``memory_format`` of 3-D images)."""

    work_dir: Path
    seed: int = 0
    epochs: int | None = None
    device: str = "auto"
    progress: bool = False
    target: str = "idh"
    aux_train: dict[str, np.ndarray] = field(default_factory=dict)
    """Class indices (-1 where unknown) of each of :meth:`Method.label_targets`, for the training patients."""
    aux_val: dict[str, np.ndarray] = field(default_factory=dict)
    distributed: Distributed = field(default_factory=Distributed)
    memory_format: str = "contiguous"
    """``"channels_last_3d"`` keeps 3-D images and conv weights channels-last on CUDA (contiguous elsewhere)."""


class Method(ABC):
    """A registered method; subclasses set ``needs`` and implement the three steps."""

    name: ClassVar[str] = ""
    needs: ClassVar[tuple[str, ...]] = ()
    uses_validation: ClassVar[bool] = True
    """Whether ``fit`` needs a validation split (early stopping); if not, it trains on the whole training fold."""

    def __init__(self, config: MethodConfig):
        self.config = config

    @abstractmethod
    def prepare(self, cohort: Cohort, patient_ids: list[str], cache_dir: Path | None = None,
                workers: int = 1, progress: bool = False) -> Prepared:
        """Build each patient's inputs (cached where costly)."""

    @abstractmethod
    def fit(self, train: list[Any], y_train: np.ndarray, val: list[Any], y_val: np.ndarray,
            n_classes: int, ctx: FitContext) -> dict[str, torch.Tensor]:
        """Fit on training inputs (``val`` for early stopping only) and return the state to save.

        Shapes:
            y_train: (n_train,) class indices; y_val: (n_val,).
        """

    @abstractmethod
    def predict_proba(self, state: dict[str, torch.Tensor], inputs: list[Any], n_classes: int,
                      device: str = "auto") -> np.ndarray:
        """Class probabilities of each input.

        Shapes:
            returns (n, n_classes), rows summing to 1.
        """

    def predict_heads(self, state: dict[str, torch.Tensor], inputs: list[Any], n_classes: int,
                      device: str = "auto") -> dict[str, np.ndarray]:
        """The prediction (key ``"prediction"``, as :meth:`predict_proba`) and the probabilities of any other
        head of a multi-head model (e.g. ``colearn``'s ``cnn`` and ``gnn``), each (n, n_classes)."""
        return {"prediction": self.predict_proba(state, inputs, n_classes, device)}

    def label_targets(self, target: str) -> tuple[str, ...]:
        """Targets besides the run's ``target`` whose labels ``fit`` reads (through ``FitContext.aux_train``):
        the other tasks of a multi-task model, or a label used to choose training patients."""
        return ()

    def tasks(self, target: str) -> tuple[str, ...]:
        """Targets besides ``target`` that the model also predicts; ``predict_heads`` returns each one's
        probabilities under the key ``task:<target>``, and the runner writes its own files for it."""
        return ()

    def sidecar(self) -> dict:
        """JSON-able facts learnt in ``fit`` that ``predict_proba`` needs besides the tensors (e.g. gene order)."""
        return {}

    def restore(self, sidecar: dict) -> None:
        """Take back what :meth:`sidecar` returned, before ``predict_proba`` on a loaded state."""
