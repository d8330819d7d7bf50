"""``gliotype explain``: why a trained run predicts what it predicts for one patient.

For a method that reads the tumour cube (``colearn``, ``cnn3d``, ``densenet3d``, ``resnet3d``):
  gradcam.nii.gz        3-D Grad-CAM of the image learner's last conv block, in [0, 1], on the patient's
                        input T1 grid (same shape and affine as ``<pid>-t1n``: it overlays in any viewer);
                        kept inside the tumour region, the only voxels the CNN's input is not zero at
                        (the coarse map of the last block spills over the boundary when upsampled)
  gradcam_points.csv    x, y, z (scanner mm), gradcam: Grad-CAM of the tumour's surface voxels projected
                        onto the nearest of the tumour-surface points (paper 000 Fig. 3b)
  gradcam_slices.png    three orthogonal slices through the tumour, T1c with the map and the tumour contour
For a method that reads the tumour points (``colearn``, ``pointgnn``):
  gnnexplainer_points.csv  x, y, z (scanner mm), importance: GNNExplainer node mask in [0, 1]
  gnnexplainer_points.png  3-D scatter of the points coloured by importance
For ``hiperfgnn``: ``saliency.nii.gz``, ``codes.nii.gz``, ``saliency.png``, ``habitats.csv`` on the DSC grid
(see :mod:`gliotype.explain.perfusion`).
For ``fof``, ``vit``, ``kd``: ``frl_<file stem>.png`` per ROI or tile and ``token_masks.csv`` (FRL's
contribution map and positive / negative views; see :mod:`gliotype.explain.histology`).
Always: ``explain.json`` (patient, class explained, the probabilities of every head, the files).

A run holds one model per fold; every map is the mean of the fold models' maps, as the prediction is
the mean of their probabilities (``gliotype evaluate``'s fold ensemble). The class explained is the
ensemble's predicted class unless one is named.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from scipy import ndimage

from gliotype.cohort import Cohort, region_mask
from gliotype.cohort.images import load_volume
from gliotype.explain.backmap import cube_to_original, write_like
from gliotype.explain.figures import points_scatter_png, slice_overlay_png
from gliotype.explain.gnnexplainer import point_importance
from gliotype.explain.gradcam import default_layer, grad_cam, upsample_cam
from gliotype.explain.points import project_to_points
from gliotype.methods.torch_method import TorchMethod
from gliotype.prepare import load_prepared, run_stage
from gliotype.prepare.stage import default_cache
from gliotype.prepare.cache import atomic_write_bytes
from gliotype.prepare.tumour_geometry import to_world
from gliotype.train.apply import load_run
from gliotype.train.checkpoint import write_json

log = logging.getLogger(__name__)

EXPLAINED_STAGES = ("tumour_image", "tumour_geometry")


@dataclass
class Explanation:
    """What :func:`explain_patient` wrote: the files by kind, and the summary saved as ``explain.json``."""

    out: Path
    files: dict[str, Path] = field(default_factory=dict)
    summary: dict = field(default_factory=dict)


def explain_patient(run: str | Path, cohort_path: str | Path, patient_id: str, out: str | Path, *,
                    class_name: str | None = None, gnn_epochs: int = 200, cache_dir: Path | None = None,
                    device: str = "auto") -> Explanation:
    """Explain the prediction of ``run`` for one patient of a cohort; writes the files listed in the module doc."""
    from gliotype.methods.histology import HistologyMethod

    cfg, method, folds = load_run(run)
    if isinstance(method, HistologyMethod):
        return _explain_histology(run, cfg, method, folds, Cohort.from_folder(cohort_path), patient_id, Path(out),
                                  class_name, cache_dir, device)
    if cfg.method == "hiperfgnn":
        return _explain_hiperf(run, cfg, method, folds, Cohort.from_folder(cohort_path), patient_id, Path(out),
                               class_name, cache_dir, device)
    if not isinstance(method, TorchMethod) or not set(method.stages) & set(EXPLAINED_STAGES):
        raise ValueError(f"{cfg.method}: explain supports methods that read the tumour image or the tumour points "
                         "(colearn, cnn3d, pointgnn, densenet3d, resnet3d); this run's method reads neither")
    cohort = Cohort.from_folder(cohort_path)
    _check_patient(cohort, patient_id)
    case = cohort[patient_id]
    classes = folds[0][1]["classes"]
    if "brain_voxels" in method.stages:
        return _explain_brainnet(run, cfg, method, folds, cohort, patient_id, Path(out), class_name, gnn_epochs,
                                 cache_dir, device)
    stages = dict.fromkeys([*method.stages, "tumour_geometry"] if "tumour_image" in method.stages else method.stages)
    prepared = {s: _prepare(method, s, cohort, patient_id, cache_dir) for s in stages}
    batch, _ = method.collate([(method.item({s: prepared[s][0] for s in method.stages}), -1)])

    models = []
    for weights, sidecar in folds:
        method.restore(sidecar.get("method_state", {}))
        models.append(method.load_model(weights, len(classes), device))
    dev = next(models[0].parameters()).device
    batch = {k: v.to(dev) for k, v in batch.items()}
    with torch.no_grad():
        heads = [method.heads(m, batch) for m in models]
    probs = {h: torch.stack([p[h][0] for p in heads]).mean(0).cpu().numpy() for h in heads[0]}
    target = _class_index(class_name, classes, probs["prediction"])

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    result = Explanation(out)
    result.summary = {"patient_id": patient_id, "method": cfg.method, "run": str(Path(run).resolve()),
                      "target": cfg.target, "class_explained": classes[target], "n_models": len(models),
                      "probabilities": {h: dict(zip(classes, map(float, p))) for h, p in probs.items()}}
    cam = None
    if "tumour_image" in method.stages:
        cam, mask, affine = _gradcam(method, models, batch["image"], target, prepared["tumour_image"][1], case, result)
    geometry = prepared.get("tumour_geometry")
    if geometry is not None:
        points_mm = to_world(geometry[0]["points"], geometry[1])
        if cam is not None:  # both stages read the same region of the same mask
            values = project_to_points(cam, mask, affine, points_mm)
            _points_outputs(result, "gradcam_points", points_mm, values, "gradcam",
                            f"{patient_id}: Grad-CAM on the tumour surface points")
        if method.point_learner(models[0]) is not None:
            _gnnexplainer(method, models, batch["points"][0], target, points_mm, gnn_epochs, patient_id, result)
    result.summary["files"] = {k: p.name for k, p in result.files.items()}
    write_json(out / "explain.json", result.summary)
    result.files["summary"] = out / "explain.json"
    return result


def _explain_brainnet(run, cfg, method, folds, cohort, patient_id, out: Path, class_name, epochs, cache_dir,
                      device) -> Explanation:
    """``brainnet``: GNNExplainer pathways, the tumour's attended pathways, point attention (see
    :mod:`gliotype.explain.network`)."""
    from gliotype.explain.network import explain_network

    classes = folds[0][1]["classes"]
    prepared = {s: _prepare(method, s, cohort, patient_id, cache_dir) for s in method.stages}
    item = {**method.item({s: prepared[s][0] for s in method.stages}), "patient_id": patient_id}
    models, heads = [], []
    for weights, sidecar in folds:
        method.restore(sidecar.get("method_state", {}))
        heads.append(method.predict_heads(weights, [item], len(classes), device))
        models.append((method.load_model(weights, len(classes), device), weights))
    probs = {h: np.mean([p[h][0] for p in heads], axis=0) for h in heads[0]}
    target = _class_index(class_name, classes, probs["prediction"])
    out.mkdir(parents=True, exist_ok=True)
    result = Explanation(out)
    dev = next(models[0][0].parameters()).device
    result.files, network = explain_network(method, models, item, prepared, cohort[patient_id], target, out, epochs, dev)
    result.summary = {"patient_id": patient_id, "method": cfg.method, "run": str(Path(run).resolve()),
                      "target": cfg.target, "class_explained": classes[target], "n_models": len(models),
                      "probabilities": {h: dict(zip(classes, map(float, p))) for h, p in probs.items()},
                      "network": network, "files": {k: p.name for k, p in result.files.items()}}
    write_json(out / "explain.json", result.summary)
    result.files["summary"] = out / "explain.json"
    return result


def _explain_hiperf(run, cfg, method, folds, cohort, patient_id, out: Path, class_name, cache_dir,
                    device) -> Explanation:
    """``hiperfgnn``: habitat saliency on the DSC grid (see :mod:`gliotype.explain.perfusion`)."""
    from gliotype.explain.perfusion import explain_hiperf

    _check_patient(cohort, patient_id)
    classes = folds[0][1]["classes"]
    arrays, _ = _prepare(method, "perfusion_input", cohort, patient_id, cache_dir)
    method._cache = Path(cache_dir) if cache_dir else default_cache(cohort)
    item = {**method.item({"perfusion_input": arrays}), "patient_id": patient_id}
    summary, files = explain_hiperf(method, folds, item, arrays, cohort[patient_id].images["dsc"],
                                    lambda p: _class_index(class_name, classes, p), out, device=device)
    result = Explanation(out, files)
    target = summary.pop("class_index")
    probs = summary.pop("probabilities")
    result.summary = {"patient_id": patient_id, "method": cfg.method, "run": str(Path(run).resolve()),
                      "target": cfg.target, "class_explained": classes[target], "n_models": len(folds),
                      "probabilities": {h: dict(zip(_classes_of(h, classes), map(float, p))) for h, p in probs.items()},
                      **summary, "files": {k: p.name for k, p in files.items()}}
    write_json(out / "explain.json", result.summary)
    result.files["summary"] = out / "explain.json"
    return result


def _explain_histology(run, cfg, method, folds, cohort, patient_id, out: Path, class_name, cache_dir,
                       device) -> Explanation:
    """``fof``, ``vit``, ``kd``: FRL maps and token views per tile (see :mod:`gliotype.explain.histology`)."""
    from gliotype.explain.histology import check_explainable, explain_tiles, write_outputs

    check_explainable(cfg.method, method)
    _check_patient(cohort, patient_id)
    classes = folds[0][1]["classes"]
    arrays, meta = _prepare(method, "histology_tiles", cohort, patient_id, cache_dir)
    models = []
    for weights, sidecar in folds:
        method.restore(sidecar.get("method_state", {}))
        models.append(method.load_model(weights, len(classes), device))
    frl = explain_tiles(method, models, arrays["tiles"], len(classes),
                        lambda p: _class_index(class_name, classes, p), batch_size=method.config.batch_size)
    files, tiles = write_outputs(frl, arrays["tiles"], meta, arrays["source"], classes, patient_id, out)
    result = Explanation(out, files)
    result.summary = {"patient_id": patient_id, "method": cfg.method, "run": str(Path(run).resolve()),
                      "target": cfg.target, "class_explained": classes[frl["target"]], "n_models": len(models),
                      "probabilities": {"prediction": dict(zip(classes, map(float, frl["patient"])))},
                      "aggregation": "patient = mean of its tiles' probabilities (each the mean over the fold models)",
                      "frl": {"cam_block": frl["cam_block"], "theta": frl["theta"], "grid": list(frl["grid"]),
                              "map": "token Grad-CAM of the explained class, min-max per tile, fold mean renormalised"},
                      "tiles": tiles, "files": {k: p.name for k, p in files.items()}}
    write_json(out / "explain.json", result.summary)
    result.files["summary"] = out / "explain.json"
    return result


def _classes_of(head: str, classes: list[str]) -> list[str]:
    """The class names of a head: another task's own (``task:<target>``), else the run's."""
    from gliotype.cohort.labels import TARGETS

    return list(TARGETS[head[5:]]) if head.startswith("task:") else classes


def _check_patient(cohort: Cohort, patient_id: str) -> None:
    if patient_id not in cohort.patient_ids:
        known = ", ".join(cohort.patient_ids[:5]) + (" ..." if len(cohort.patient_ids) > 5 else "")
        raise ValueError(f"{patient_id}: no such patient in {cohort.root} (patients: {known}); check the --patient id")


def _prepare(method: TorchMethod, stage: str, cohort: Cohort, patient_id: str, cache_dir: Path | None):
    """The (arrays, meta) of one stage for one patient; a patient the stage cannot prepare is an error."""
    done = run_stage(stage, cohort, [patient_id], method.stage_config(stage), cache_dir)
    if patient_id in done.failed:
        raise ValueError(f"{patient_id}: cannot explain, stage {stage} failed: {done.failed[patient_id]}")
    return load_prepared(done.done[patient_id])


def _class_index(class_name: str | None, classes: list[str], prediction: np.ndarray) -> int:
    if class_name is None:
        return int(prediction.argmax())
    if class_name not in classes:
        raise ValueError(f"--class {class_name!r}: this run's classes are {classes}")
    return classes.index(class_name)


def _gradcam(method: TorchMethod, models, image: torch.Tensor, target: int, meta: dict, case, result: Explanation):
    """Fold-mean Grad-CAM on the cube, mapped back onto the T1 grid; returns the map, the tumour region
    and the affine, all on the RAS+ grid."""
    maps, layer_name = [], None
    for model in models:
        learner = method.image_learner(model)
        layer = default_layer(learner)
        layer_name = next(n for n, m in learner.named_modules() if m is layer)
        maps.append(upsample_cam(grad_cam(learner, layer, image, target), image.shape[-3:])[0])
    seg, affine = load_volume(case.images["seg"])
    mask = region_mask(seg, meta["region"]).mask
    cam = np.clip(cube_to_original(torch.stack(maps).mean(0).cpu().numpy(), meta), 0, None) * mask
    cam = (cam / cam.max() if cam.max() > 0 else cam).astype(np.float32)
    result.files["gradcam"] = write_like(cam, case.images["t1n"], result.out / "gradcam.nii.gz")
    t1c, _ = load_volume(case.images["t1c"])
    centre = np.round(ndimage.center_of_mass(mask)).astype(int)
    spacing = np.sqrt((np.asarray(affine)[:3, :3] ** 2).sum(0))
    result.files["gradcam_slices"] = slice_overlay_png(
        t1c, cam, mask, centre, result.out / "gradcam_slices.png",
        f"{case.patient_id}: Grad-CAM ({result.summary['class_explained']})", spacing=tuple(spacing))
    result.summary["gradcam"] = {"layer": layer_name, "grid": f"input T1 {case.images['t1n'].name}",
                                 "peak_voxel_ras": [int(i) for i in np.unravel_index(cam.argmax(), cam.shape)]}
    return cam, mask, affine


def _gnnexplainer(method: TorchMethod, models, points: torch.Tensor, target: int, points_mm: np.ndarray,
                  epochs: int, patient_id: str, result: Explanation) -> None:
    maps = [point_importance(method.point_learner(m), points, target, epochs=epochs) for m in models]
    importance = np.mean(maps, axis=0)
    _points_outputs(result, "gnnexplainer_points", points_mm, importance, "importance",
                    f"{patient_id}: GNNExplainer point importance")
    result.summary["gnnexplainer"] = {"epochs": epochs, "points_above_0.5": int((importance > 0.5).sum()),
                                      "points_above_0.8": int((importance > 0.8).sum())}


def _points_outputs(result: Explanation, name: str, points_mm: np.ndarray, values: np.ndarray, column: str,
                    title: str) -> None:
    frame = pd.DataFrame({"x": points_mm[:, 0], "y": points_mm[:, 1], "z": points_mm[:, 2], column: values})
    atomic_write_bytes(result.out / f"{name}.csv", frame.to_csv(index=False, float_format="%.5g").encode())
    result.files[name] = result.out / f"{name}.csv"
    result.files[f"{name}_png"] = points_scatter_png(points_mm, values, result.out / f"{name}.png", title, label=column)
