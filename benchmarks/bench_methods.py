"""Every registered method that no other module benches: a training step and inference (``<method>-train``/``-infer``).

Both run on the small synthetic cohort (4 patients, every modality), prepared by the method's own
``prepare`` into a cache shared by the cases of a run (built once, untimed, in a separate process so that
a row's peak RSS is the training's or the inference's, not the preparation's), one torch thread, CPU,
target ``idh`` (2 classes, the cohort's own labels), untrained weights (the cost does not depend on them).

* ``<method>-train``: one optimiser step as the method's ``fit`` takes it inside ``fit_torch``: the
  method's ``augment`` then ``loss`` (forward and loss), backward, AdamW step (the method's lr and weight
  decay), on one batch of ``min(batch_size, patients)`` items, collated untimed (data loading is not part
  of the step). Before the step, the state the method's ``fit`` sets up is set up the same way: the
  rotated classes (rotating methods), one item per image and the genomic columns (histology methods),
  the frozen fusion teacher (``kd``, whose student step this is), the brain-network graphs of a frozen,
  untrained generator, standardised (``brainnet``; the generator's own training is not timed).
* ``<method>-infer``: ``predict_heads`` over the prepared patients (items built from the cache as the
  method does), patients/s.

``rnaseq-svm`` is not a torch method: its row is the fit of a cross-validation fold, as
``bench_rnaseq``'s ``rnaseq-lr-fit``. The methods other modules bench are listed in :data:`ELSEWHERE`; a
registered method in neither list, or a listed one that is no longer registered, fails every case of this
module with a message naming it.
"""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from _harness import Case, Context, Row, check_coverage, make_row, measure
from bench_cohort import cohort_fixture

ELSEWHERE = {"densenet3d": "bench_train", "pointgnn": "bench_pointgnn", "hiperfgnn": "bench_hiperf_train",
             "fof": "bench_fof", "vit": "bench_fof", "rnaseq-lr": "bench_rnaseq", "rnaseq": "bench_rnaseq",
             "wsi-rna": "bench_wsi_rna"}
"""Registered methods benched by another module (that module's name)."""
TORCH = {"brainnet": False, "cnn3d": True, "colearn": False, "concat-fusion": False, "gliomt": True, "kd": False,
         "kronecker-fusion": False, "perfgat": True, "resnet3d": False}
"""The torch methods benched here, and whether their cases are quick ones (about a second or less)."""
FIT_ONLY = ("rnaseq-svm",)
"""Non-torch methods benched here by their fit."""
TARGET, SIZE = "idh", "small"
CASES = [
    *(Case(f"{m}-{mode}", SIZE, quick=quick, params={"method": m, "mode": mode}, timeout_s=900)
      for m, quick in TORCH.items() for mode in ("train", "infer")),
    *(Case(f"{m}-fit", "200x1544", params={"method": m, "mode": "fit"}) for m in FIT_ONLY),
]


def run(case: Case, ctx: Context) -> list[Row]:
    import torch

    from gliotype.methods import create_method, list_methods

    check_coverage("bench_methods", "gliotype's method registry", [spec.name for spec in list_methods()],
                   [*TORCH, *FIT_ONLY, *ELSEWHERE], "add a new method to TORCH (or FIT_ONLY) in "
                   "benchmarks/bench_methods.py, or to ELSEWHERE if a module of its own benches it; remove a gone one")
    torch.set_num_threads(1)
    torch.manual_seed(0)
    if case.params["mode"] == "fit":
        return [fit_row(case, ctx)]
    method = create_method(case.params["method"])
    data = prepared(method, ctx.work)
    if case.params["mode"] == "train":
        return [train_row(case, ctx, method, data)]
    return [infer_row(case, ctx, method, data)]


# --- inputs -------------------------------------------------------------------------------------


def prepared(method, work: Path) -> dict:
    """The method's inputs for the small cohort's patients and their ``idh`` class indices.

    The shared cache is filled by a separate process the first time, so this process only reads it.
    """
    from gliotype.cohort import Cohort
    from gliotype.cohort.labels import label_classes
    from gliotype.methods.lazy import items_of

    root, cache = cohort_fixture(work, SIZE), work / "methods-cache"
    done = cache / f"{method.name}.prepared"
    if not done.is_file():
        code = ("import sys; from gliotype.cohort import Cohort; from gliotype.methods import create_method; "
                "c = Cohort.from_folder(sys.argv[2]); p = create_method(sys.argv[1]).prepare(c, c.patient_ids, "
                "cache_dir=sys.argv[3]); sys.exit(f'could not prepare {p.failed}' if p.failed else 0)")
        subprocess.run([sys.executable, "-c", code, method.name, str(root), str(cache)], check=True)
        done.touch()
    cohort = Cohort.from_folder(root)
    result = method.prepare(cohort, cohort.patient_ids, cache_dir=cache)
    if result.failed:
        raise RuntimeError(f"{method.name} could not prepare {result.failed}")
    ids = list(result.inputs)
    y = [label_classes(TARGET).index(cohort[p].labels[TARGET]) for p in ids]
    return {"inputs": result.inputs, "ids": ids, "items": items_of(result.inputs, ids), "y": y}


# --- training step ------------------------------------------------------------------------------


@dataclass
class Setup:
    """What a method's ``fit`` trains on: items (one per image for histology), their labels, the network."""

    items: list
    y: Any
    model: Any
    note: str = ""
    unit: str = "patients"
    generator: Any = None
    """``brainnet``: the frozen generator of the items' graphs."""


def train_row(case: Case, ctx: Context, method, data: dict) -> Row:
    import torch

    from gliotype.methods.torch_method import class_weights

    setup = fit_setup(method, list(data["items"]), data["y"], 2)
    items, y, model, note = setup.items, setup.y, setup.model, setup.note
    size = min(method.config.batch_size, len(items))
    batch, yb = method.collate(list(zip(items[:size], y[:size].tolist())))
    weight = class_weights(y, 2, method.config.class_weighting)
    opt = torch.optim.AdamW(model.parameters(), lr=method.config.lr, weight_decay=method.config.weight_decay)

    def step() -> None:
        model.train()
        opt.zero_grad(set_to_none=True)
        loss, _ = method.loss(model, method.augment(batch, yb), yb, weight)
        loss.backward()
        opt.step()

    times = measure(step, ctx.repeats(3, quick=1))
    note = (f"batch {size} of {len(items)} {setup.unit} (batch_size {method.config.batch_size}); "
            f"augment+loss+backward+AdamW; {note}1 torch thread")
    return make_row(case, times, per="step", items=size, unit=f"{setup.unit}/s", size=f"{SIZE} b{size}", note=note)


def fit_setup(method, items: list, y, n_classes: int) -> Setup:
    """The training items and network, with the state the method's ``fit`` sets up.

    Raises:
        ValueError: the method's fit is none of those mirrored here.
    """
    import numpy as np

    from gliotype.methods.brainnet import BrainNet
    from gliotype.methods.fusion import KnowledgeDistillation
    from gliotype.methods.histology import HistologyMethod
    from gliotype.methods.rotation import RotatingMethod, rotated_classes
    from gliotype.methods.torch_method import TorchMethod

    kind, y, generator, unit = type(method), np.asarray(y), None, "patients"
    if isinstance(method, BrainNet):
        generator = brainnet_generator(method, items)
        items, note = brainnet_items(method, items, generator), "graphs of an untrained generator; "
    elif isinstance(method, HistologyMethod) and kind.fit is HistologyMethod.fit:
        items, y, note = histology_items(method, items, y, n_classes)
        unit = "images"
        if isinstance(method, KnowledgeDistillation):
            method._teacher = _kd_teacher(method, n_classes)
            note += "student step, frozen fusion teacher's forward included; "
        elif kind.fit_images is not HistologyMethod.fit_images:
            raise ValueError(f"{method.name} overrides fit_images; bench_methods mirrors HistologyMethod's and kd's")
    elif kind.fit in (TorchMethod.fit, RotatingMethod.fit):
        note = ""
    else:
        raise ValueError(f"{method.name}'s fit ({kind.fit.__qualname__}) is none that bench_methods mirrors "
                         "(TorchMethod, RotatingMethod, HistologyMethod, kd, BrainNet): add its setup to fit_setup")
    if isinstance(method, RotatingMethod):
        method._rotated = rotated_classes(y, n_classes, method.config.augment)
        note += f"rotated classes {method._rotated} ({method.config.augment}); "
    return Setup(items, y, method.build(n_classes), note, unit, generator)


def histology_items(method, items: list, y, n_classes: int):
    """One item per image with its patient's label, the genomic columns and class weights of ``fit``."""
    from gliotype.methods.histology import expand
    from gliotype.methods.torch_method import class_weights

    method._genomic = method.genomic_columns(TARGET)
    rois, y_rois = expand(items, y)
    method._weight = class_weights(y_rois, n_classes, method.config.class_weighting)
    side = method.config.tile_size
    return rois, y_rois, f"{len(rois)} images of {side}x{side} from {len(items)} patients; "


def _kd_teacher(method, n_classes: int):
    from gliotype.methods.fusion import _FusionMethod

    return _FusionMethod.build(method, n_classes).eval().requires_grad_(False)


def brainnet_items(method, items: list, generator) -> list:
    """``items`` with the standardised graphs of ``generator``, as ``BrainNet.fit`` gives them to the encoders."""
    from gliotype.methods.brainnet_graphs import attribute_scale, scaled

    method._pairs, method._n_nodes = items[0]["pairs"], len(items[0]["nodes"])
    graphs = method._with_graphs(items, generator)
    method._scale = attribute_scale(graphs)
    return scaled(graphs, method._scale)


def brainnet_generator(method, items: list):
    """A frozen generator of ``brainnet``'s architecture, untrained (the cost does not depend on the weights)."""
    import torch

    from gliotype.nn.netgen import Generator

    torch.manual_seed(0)
    fa = items[0].get("edges_fa")
    return Generator.from_config(method.config.generator_config(), items[0]["nodes"].shape[1],
                                 items[0]["edges"].shape[1], None if fa is None else fa.shape[1]).eval()


# --- inference ----------------------------------------------------------------------------------


def infer_row(case: Case, ctx: Context, method, data: dict) -> Row:
    setup = fit_setup(method, list(data["items"]), data["y"], 2)
    state, extra = setup.model.state_dict(), ""
    if setup.generator is not None:
        state, extra = brainnet_state(method, setup)
    inputs, n = data["items"], len(data["ids"])
    if setup.unit != "patients":
        extra += f"{len(setup.items)} {setup.unit}; "
    times = measure(lambda: method.predict_heads(state, inputs, 2, device="cpu"), ctx.repeats(3, quick=1))
    note = f"predict_heads over {n} prepared patients (batch_size {method.config.batch_size}); {extra}1 torch thread"
    return make_row(case, times, per="patient", per_run=n, items=n, unit="patients/s", size=f"{SIZE} ({n} pt)",
                    note=note)


def brainnet_state(method, setup: Setup):
    """A fold's state as ``BrainNet.fit`` saves it, the feature classifiers fit on the same patients' features."""
    import numpy as np
    import torch

    model, generator, y = setup.model, setup.generator, setup.y
    state = {f"model.{k}": v for k, v in model.state_dict().items()}
    state.update({f"generator.{k}": v for k, v in generator.state_dict().items()})
    state.update({f"graph.{k}": v for k, v in method._scale.items()})
    state["graph.pairs"], state["graph.n_nodes"] = method._pairs, torch.tensor(method._n_nodes)
    state["graph.dims"] = torch.tensor([generator.node.in_dim, generator.edge.anat_dim, generator.edge.fa_dim or 0])
    if method.config.classifier != "encoder":
        features = method._features(model.eval(), setup.items)
        state.update({f"classifier.{k}": torch.from_numpy(v) for k, v in features.items()})
        state["classifier.y"], state["classifier.seed"] = torch.from_numpy(np.asarray(y, np.int64)), torch.tensor(0)
    method._cache = None  # each prediction runs the generator, as on new patients
    return state, (f"generator, encoders, then the {method.config.classifier} head fit at prediction "
                   f"({method.config.population_epochs} epochs; the same {len(y)} patients' features stand in "
                   "for the held-out labelled ones) and MLP, SVM; ")


# --- non-torch methods --------------------------------------------------------------------------


def fit_row(case: Case, ctx: Context) -> Row:
    """Seconds per cross-validation fold of a method's ``fit``, on ``bench_rnaseq``'s table."""
    from bench_rnaseq import fold_fit_row

    return fold_fit_row(case, ctx, case.params["method"], ctx.repeats(3, quick=1))
