"""The learning-rate schedules of ``fit_torch``: cosine from lr to 0, continued by a resumed fit."""

import math
from types import SimpleNamespace

import pytest
import torch

from gliotype.train.fit import Classifier


def lr_in_epoch(schedule: str, epoch: int, start: int = 0, total: int = 4) -> float:
    model = torch.nn.Linear(2, 2)
    module = Classifier(model, step=None, lr=0.1, weight_decay=0.0, schedule=schedule, total_epochs=total,
                        start_epoch=start)
    optimiser = torch.optim.AdamW(model.parameters(), lr=0.1)
    module._trainer = SimpleNamespace(optimizers=[optimiser], current_epoch=epoch - start)
    module.on_train_epoch_start()
    return optimiser.param_groups[0]["lr"]


def test_cosine_goes_from_lr_towards_zero_by_hand():
    assert [round(lr_in_epoch("cosine", e), 6) for e in range(4)] == [0.1, 0.085355, 0.05, 0.014645]
    assert lr_in_epoch("cosine", 2) == pytest.approx(0.1 * 0.5 * (1 + math.cos(math.pi / 2)))


def test_a_resumed_fit_continues_the_curve_and_constant_stays():
    assert lr_in_epoch("cosine", 2, start=2) == pytest.approx(lr_in_epoch("cosine", 2))
    assert lr_in_epoch("constant", 3) == 0.1
    with pytest.raises(ValueError, match="cosine"):
        Classifier(torch.nn.Linear(1, 1), None, 0.1, 0.0, schedule="step")
