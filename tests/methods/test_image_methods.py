"""Image methods on the tiny hand-made cohort, whose label sits in the tumour's T2 intensity."""

import json

import pytest
import torch

from gliotype.methods import create_method, get_spec, list_methods
from gliotype.train import train


def test_registry_lists_methods_with_modalities_and_targets():
    names = [s.name for s in list_methods()]
    assert {"densenet3d", "resnet3d", "cnn3d", "rnaseq-lr"} <= set(names)
    assert get_spec("densenet3d").modalities == ("mri", "seg")
    assert get_spec("rnaseq-lr").targets == ("idh", "codel_1p19q", "grade")


@pytest.mark.parametrize("name", ["densenet3d", "resnet3d", "cnn3d"])
def test_image_networks_map_a_cube_to_class_logits(name):
    net = create_method(name).build(3)
    net.eval()
    with torch.no_grad():
        out = net(torch.zeros(2, 4, 32, 32, 32))
    assert out.shape == (2, 3)


def test_cnn3d_learns_the_planted_t2_signal(tiny_mri_cohort, tmp_path):
    run = train(tiny_mri_cohort, "cnn3d", "idh", tmp_path / "run", folds=2, epochs=12, seed=0,
                overrides={"size": 16, "spacing": 3.0, "patience": 12, "batch_size": 4, "lr": 3e-3})
    auc = json.loads((run / "metrics.json").read_text())["metrics"]["auc"]["value"]
    assert auc >= 0.9


def test_densenet3d_trains_and_applies(tiny_mri_cohort, tmp_path):
    run = train(tiny_mri_cohort, "densenet3d", "idh", tmp_path / "run", folds=2, epochs=1,
                overrides={"size": 32, "spacing": 3.0, "batch_size": 4})
    sidecar = json.loads((run / "model" / "fold1.json").read_text())
    assert sidecar["method"] == "densenet3d" and sidecar["preprocessing"]["tumour_image"]["size"] == 32
    assert sidecar["fit"]["epochs_run"] == 1
