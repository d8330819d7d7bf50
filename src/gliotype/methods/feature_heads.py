"""Classifiers on learnt patient features: the population graph (paper 001 eq. 8), an MLP and an SVM.

All three are fit on the features and labels of the training patients set aside for them (never the
patients the encoders were trained on) and predict new patients. The population graph is transductive:
the new patients are unlabelled nodes of the same graph, so a patient's probability depends on which
other patients are predicted with it (all test patients of a fold together, as in the paper). Features
are standardised with the labelled patients' mean and standard deviation only (also before the
population graph's correlations: raw features with per-column offsets would correlate every pair).

Population graph node and edge features (paper Table 1), by name: ``uT-rB`` (nodes ``u^T``, edges
``r(u^B)``), ``uB-rT``, ``uTB-rB`` (the paper's best, our default), ``uTB-rT``, ``uTB-rTB``; ``u^T`` is the
concatenated tumour features ``<u^I, u^P>``, ``u^B`` the brain-network features, ``uTB`` both. Note that
eq. 8's Pearson correlation compares the *pattern* of two patients' features: a shift of every feature of a
patient by the same amount leaves all its correlations unchanged.
"""

from __future__ import annotations

import warnings
from typing import Literal

import numpy as np
from sklearn.neural_network import MLPClassifier
from sklearn.svm import SVC

from gliotype.nn.population import PopulationConfig, fit_predict_population

PopulationChoice = Literal["uT-rB", "uB-rT", "uTB-rB", "uTB-rT", "uTB-rTB"]
POPULATION_CHOICES: tuple[str, ...] = ("uT-rB", "uB-rT", "uTB-rB", "uTB-rT", "uTB-rTB")


def _features(name: str, tumour: np.ndarray | None, brain: np.ndarray | None) -> np.ndarray:
    parts = {"T": [tumour], "B": [brain], "TB": [tumour, brain]}[name]
    if any(p is None for p in parts):
        needed = {"T": "a tumour encoder (image or geometry)", "B": "the network encoder"}
        missing = " and ".join(needed[k] for k in ("T", "B") if k in name and {"T": tumour, "B": brain}[k] is None)
        raise ValueError(f"population graph {name!r} features need {missing}; choose another population or "
                         "add the encoder")
    return np.concatenate(parts, axis=1)


def population_features(choice: str, tumour: np.ndarray | None, brain: np.ndarray | None
                        ) -> tuple[np.ndarray, np.ndarray]:
    """(node features, edge features) of a population choice, e.g. ``"uTB-rB"``.

    Shapes:
        tumour: (N, d_T) or None; brain: (N, d_B) or None -> (N, d_node), (N, d_edge).
    """
    if choice not in POPULATION_CHOICES:
        raise ValueError(f"unknown population graph {choice!r}; choose one of {POPULATION_CHOICES}")
    node, edge = choice.split("-")
    return _features(node[1:], tumour, brain), _features(edge[1:], tumour, brain)


def population_needs(choice: str) -> set[str]:
    """The feature kinds (``"tumour"``, ``"brain"``) a population choice reads."""
    letters = choice.replace("-r", "")
    return {kind for kind, letter in (("tumour", "T"), ("brain", "B")) if letter in letters}


def _standardise(train: np.ndarray, test: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    mean, std = train.mean(0), train.std(0)
    std = np.where(std > 1e-8, std, 1.0)
    return (train - mean) / std, (test - mean) / std


def feature_heads(train: dict[str, np.ndarray | None], y_train: np.ndarray, test: dict[str, np.ndarray | None],
                  n_classes: int, *, population: str = "uTB-rB", config: PopulationConfig | None = None,
                  seed: int = 0, device: str = "cpu") -> dict[str, np.ndarray]:
    """Probabilities of the test patients from the three feature classifiers.

    Args:
        train, test: ``{"tumour": (n, d_T) or None, "brain": (n, d_B) or None}`` features.
        y_train: (n_train,) class indices of the labelled patients; the test labels are never passed in.
        population: the population graph's node/edge features (see module docstring).

    Returns:
        ``{"population": ..., "mlp": ..., "svm": ...}``, each (n_test, n_classes); ``population`` only
        when its features exist.
    """
    y_train = np.asarray(y_train)
    kinds = [k for k in ("tumour", "brain") if train.get(k) is not None]
    scaled = {k: _standardise(train[k], test[k]) for k in kinds}
    xs_train = np.concatenate([scaled[k][0] for k in kinds], axis=1)
    xs_test = np.concatenate([scaled[k][1] for k in kinds], axis=1)
    mlp = MLPClassifier(hidden_layer_sizes=(64,), alpha=1e-3, max_iter=2000, random_state=seed).fit(xs_train, y_train)
    with warnings.catch_warnings():  # sklearn 1.9 deprecates probability=True; its Platt scaling is what we want
        warnings.simplefilter("ignore", FutureWarning)
        svm = SVC(probability=True, random_state=seed).fit(xs_train, y_train)
    out = {"mlp": _full(mlp.predict_proba(xs_test), mlp.classes_, n_classes),
           "svm": _full(svm.predict_proba(xs_test), svm.classes_, n_classes)}
    if population_needs(population) <= set(kinds):
        every = {k: np.concatenate(scaled[k]) if k in scaled else None for k in ("tumour", "brain")}
        nodes, edges = population_features(population, every["tumour"], every["brain"])
        y = np.concatenate([y_train, -np.ones(len(xs_test), dtype=int)])
        prob = fit_predict_population(nodes, edges, y, n_classes, config or PopulationConfig(), seed=seed, device=device)
        out["population"] = np.asarray(prob, dtype=np.float64)[len(xs_train):]
    return out


def _full(prob: np.ndarray, classes: np.ndarray, n_classes: int) -> np.ndarray:
    out = np.zeros((prob.shape[0], n_classes))
    out[:, classes] = prob
    return out
