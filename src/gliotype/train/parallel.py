"""How a fit spreads over processes (Lightning's DDP, ``torchrun``) and lays out its tensors.

Under DDP every process draws the same seeded order of training patients and takes every world-size-th
one (:class:`FitLoaders`), so an optimiser step sees the patients one process with ``world_size`` times the
batch would see, and DDP averages the gradients. :func:`check_hardware` refuses settings that cannot work
before any data is touched.
"""

from __future__ import annotations

import difflib
import logging
import math
import os

import lightning as L
import torch
from lightning.fabric.utilities.distributed import DistributedSamplerWrapper
from torch.utils.data import DataLoader, Dataset, Sampler

from gliotype.methods.base import Distributed

log = logging.getLogger(__name__)

MEMORY_FORMATS = ("contiguous", "channels_last_3d")


class SeededOrder(Sampler[int]):
    """One permutation of ``range(n)`` per pass, drawn from ``generator``: the same orders on every rank.

    (A ``RandomSampler`` draws a second, unused permutation when it is read to its end, which
    ``DistributedSamplerWrapper`` always does and a one-process epoch does not: their orders would drift.)
    """

    def __init__(self, n: int, generator: torch.Generator):
        self.n, self.generator = n, generator

    def __len__(self) -> int:
        return self.n

    def __iter__(self):
        return iter(torch.randperm(self.n, generator=self.generator).tolist())


class FitLoaders(L.LightningDataModule):
    """The fit's loaders. Training items come in a permutation drawn from a generator seeded with ``seed``;
    under DDP every rank draws the same one and rank ``r`` takes its positions ``r, r + world, ...``
    (Lightning's wrapper, told not to shuffle again), so that an optimiser step sees the items one process
    with ``world`` times the batch sees. Validation is split by Lightning, in order (padded by repeating its
    first items to a multiple of the world size).
    """

    def __init__(self, train: Dataset, val: Dataset, seed: int, **loader):
        super().__init__()
        self.train, self.val, self.seed, self.loader = train, val, seed, loader

    def train_dataloader(self) -> DataLoader:
        generator = torch.Generator().manual_seed(self.seed)
        sampler = SeededOrder(len(self.train), generator)
        world = self.trainer.world_size
        if world > 1:  # a DistributedSampler: Lightning keeps it as it is
            sampler = DistributedSamplerWrapper(sampler, num_replicas=world, rank=self.trainer.global_rank, shuffle=False)
        per_rank = math.ceil(len(self.train) / world)  # a last, smaller batch only when it would be the one batch
        return DataLoader(self.train, sampler=sampler, generator=generator,
                          drop_last=per_rank > self.loader["batch_size"], **self.loader)

    def val_dataloader(self) -> DataLoader:
        return DataLoader(self.val, **self.loader)


def check_hardware(distributed: Distributed, memory_format: str) -> None:
    """Refuse an unknown Lightning strategy or memory format (naming the known ones), or devices that do not
    match the processes torchrun started: before any work."""
    from lightning.pytorch.strategies import StrategyRegistry

    check_choice("strategy", distributed.strategy, ["auto", *StrategyRegistry.available_strategies()])
    check_choice("memory format", memory_format, list(MEMORY_FORMATS))
    check_launcher(distributed)


def check_choice(what: str, value: str, known: list[str]) -> None:
    if value not in known:
        close = difflib.get_close_matches(value, known, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise ValueError(f"unknown {what} {value!r}{hint}; choose one of {known}")


def use_channels_last(memory_format: str, on_gpu: bool) -> bool:
    """Whether a fit uses ``channels_last_3d``: only where asked and on CUDA (on CPU it is slower)."""
    check_choice("memory format", memory_format, list(MEMORY_FORMATS))
    if memory_format == "channels_last_3d" and not on_gpu:
        log.info("channels_last_3d asked off CUDA: kept contiguous (it helps CUDA convolutions only)")
        return False
    return memory_format == "channels_last_3d"


def check_launcher(distributed: Distributed) -> None:
    """Under ``torchrun``, refuse a fit whose devices x nodes differ from the processes torchrun started (each
    would otherwise fit alone, and all would write the same files)."""
    if "TORCHELASTIC_RUN_ID" not in os.environ or distributed.devices == "auto":
        return
    world, local = int(os.environ.get("WORLD_SIZE", 1)), int(os.environ.get("LOCAL_WORLD_SIZE", 1))
    if distributed.devices * distributed.num_nodes != world:
        raise ValueError(f"torchrun started {world} processes ({local} per node), but this fit asks for "
                         f"devices={distributed.devices} x num_nodes={distributed.num_nodes}; pass "
                         f"--devices {local} --num-nodes {max(world // local, 1)} (devices = --nproc_per_node, "
                         "num_nodes = --nnodes)")
