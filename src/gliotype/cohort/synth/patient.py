"""Rendering and writing one synthetic patient (Contract 1 files) from its :class:`PatientParams`."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from gliotype.cohort.synth import histology, io
from gliotype.cohort.synth.anatomy import render_tissue
from gliotype.cohort.synth.dsc import TR_S, render_dsc
from gliotype.cohort.synth.grids import dsc_grid, structural_grid
from gliotype.cohort.synth.mri import SEQUENCES, render_fa, render_structural
from gliotype.cohort.synth.network import disruption
from gliotype.cohort.synth.params import PatientParams
from gliotype.cohort.synth.tumour import ENHANCING, NECROSIS, OEDEMA, render_lesion

TILES_PER_SAMPLE = 2
SLIDE_SIDE = 2048


OPTIONAL = ("fa", "dsc", "histology")
"""Modalities that can be left out to synthesise faster; the structural MRI, mask and RNA are always written,
and are the same bytes with or without the others (they are rendered first)."""


def _write_images(folder: Path, params: PatientParams, size: str, rng: np.random.Generator,
                  optional: frozenset[str]) -> dict:
    pid = params.patient_id
    grid = structural_grid(size)
    tissue = render_tissue(grid, params.jitter)
    lesion = render_lesion(grid, params, tissue)
    disrupt = disruption(grid, params.jitter, tissue, lesion.rho, params.effects["network"])
    images = render_structural(grid, tissue, lesion, disrupt, params.effects["texture"], params.site, rng)
    for seq in SEQUENCES:
        io.write_nifti(folder / f"{pid}-{seq}.nii.gz", images[seq], grid.affine)
    del images
    io.write_nifti(folder / f"{pid}-seg.nii.gz", lesion.seg, grid.affine)
    truth = {"tumour_centre_mm": lesion.centre_mm.round(3).tolist(),
             "tumour_centre_voxel": lesion.centre_voxel.round(3).tolist()}
    if "fa" in optional:
        io.write_nifti(folder / f"{pid}-fa.nii.gz", render_fa(grid, tissue, lesion, disrupt, rng), grid.affine)
    if "dsc" in optional:
        dgrid = dsc_grid(size)
        if dgrid.shape != grid.shape or not np.allclose(dgrid.affine, grid.affine):
            tissue = render_tissue(dgrid, params.jitter)
            lesion_d = render_lesion(dgrid, params, tissue)
        else:
            lesion_d = lesion
        series = render_dsc(dgrid, tissue, lesion_d, params.effects["perfusion"], params.n_timepoints, rng)
        io.write_nifti(folder / f"{pid}-dsc.nii.gz", series, dgrid.affine, tr_s=TR_S)
        truth["dsc_tumour_centre_voxel"] = lesion_d.centre_voxel.round(3).tolist()
    return {
        **truth,
        "voxels": {
            "necrosis_or_nonenhancing": int((lesion.seg == NECROSIS).sum()),
            "oedema": int((lesion.seg == OEDEMA).sum()),
            "enhancing": int((lesion.seg == ENHANCING).sum()),
            "necrosis": int(lesion.necrosis.sum()),
        },
    }


def _write_histology(folder: Path, params: PatientParams, size: str, rng: np.random.Generator) -> list[str]:
    hist = folder / "histology"
    hist.mkdir(exist_ok=True)
    side = histology.tile_size(size)
    effect = params.effects["histology"]
    names = []
    for sample, latent in zip(params.samples, params.sample_latents):
        for k in range(1, TILES_PER_SAMPLE + 1):
            name = f"{sample}_roi{k}.png"
            io.write_png(hist / name, histology.render_tile(side, effect, latent, rng))
            names.append(name)
    if size == "full":
        slide = histology.render_tile(SLIDE_SIDE, effect, params.sample_latents[0], rng)
        io.write_pyramid(hist / f"{params.patient_id}-slide.tif", slide, levels=3)
        names.append(f"{params.patient_id}-slide.tif")
    return names


def write_patient(out: Path, params: PatientParams, size: str, optional=OPTIONAL) -> dict:
    """Render patient ``params`` at ``size`` and write its folder under ``out``.

    Args:
        out: Cohort root.
        params: The patient's draws.
        size: ``"small"`` or ``"full"``.
        optional: Which of :data:`OPTIONAL` to write.

    Returns:
        Ground truth for ``synth.json`` (tumour centre, voxel counts, histology files).
    """
    folder = out / params.patient_id
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(params.render_seed)
    truth = _write_images(folder, params, size, rng, frozenset(optional))
    truth["histology_files"] = _write_histology(folder, params, size, rng) if "histology" in optional else []
    return truth
