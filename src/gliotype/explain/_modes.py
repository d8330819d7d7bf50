"""Context managers that put a model in a temporary state and always restore it: eval mode, frozen weights."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from torch import nn


@contextmanager
def eval_mode(model: nn.Module) -> Iterator[nn.Module]:
    """Put every submodule of ``model`` in eval mode; restore each one's own training flag on exit.

    Restoring per module (not ``model.train(flag)``) keeps a deliberately frozen BatchNorm frozen.
    """
    flags = [(module, module.training) for module in model.modules()]
    model.eval()
    try:
        yield model
    finally:
        for module, training in flags:
            module.training = training


@contextmanager
def frozen(model: nn.Module) -> Iterator[nn.Module]:
    """Turn off ``requires_grad`` on every parameter of ``model``; restore each flag on exit.

    Explanations optimise or differentiate with respect to inputs and masks only, so nothing is
    accumulated in the parameters' ``.grad`` (a later optimiser step is not disturbed).
    """
    flags = [(param, param.requires_grad) for param in model.parameters()]
    for param, _ in flags:
        param.requires_grad_(False)
    try:
        yield model
    finally:
        for param, requires_grad in flags:
            param.requires_grad_(requires_grad)
