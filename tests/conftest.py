"""Shared fixtures: the real data behind the ``realdata`` marker, and small synthetic cohorts."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

SHARED_DATA = Path(os.environ.get("GLIOTYPE_SHARED_DATA", Path(__file__).resolve().parents[1] / ".." / "shared" / "data")).resolve()


def pytest_collection_modifyitems(config, items):
    if SHARED_DATA.is_dir():
        return
    skip = pytest.mark.skip(reason=f"real data not found at {SHARED_DATA} (a user's clone has no ../shared; "
                                   "set GLIOTYPE_SHARED_DATA to point at it)")
    for item in items:
        if "realdata" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def shared_data() -> Path:
    return SHARED_DATA


def write_tiny_mri_cohort(root: Path, n: int = 16, seed: int = 0, shape=(20, 20, 20)) -> Path:
    """A fast hand-made cohort: brains of noise, a spherical tumour whose T2 is bright when IDH-mutant.

    Every patient has t1n/t1c/t2w/t2f/seg on one 3 mm grid, labels idh/codel/grade and an RNA row in
    which gene G0 carries IDH (so MRI and RNA methods both have a known signal).
    """
    import nibabel as nib
    import numpy as np

    rng = np.random.default_rng(seed)
    affine = np.diag([3.0, 3.0, 3.0, 1.0])
    grid = np.stack(np.meshgrid(*[np.arange(s) for s in shape], indexing="ij"), -1)
    rows, rna = ["patient_id,idh,codel_1p19q,grade"], ["patient_id\t" + "\t".join(f"G{g}" for g in range(6))]
    root.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        pid, mutant = f"P{i:03d}", i % 2 == 1
        folder = root / pid
        folder.mkdir()
        centre = rng.uniform(7, 13, 3)
        tumour = ((grid - centre) ** 2).sum(-1) <= rng.uniform(2.5, 4) ** 2
        for seq in ("t1n", "t1c", "t2w", "t2f"):
            img = rng.normal(100, 10, shape).astype(np.float32)
            if seq == "t2w":
                img[tumour] += 60 if mutant else -20
            nib.save(nib.Nifti1Image(img, affine), str(folder / f"{pid}-{seq}.nii.gz"))
        seg = np.where(tumour, 1, 0).astype(np.uint8)
        nib.save(nib.Nifti1Image(seg, affine), str(folder / f"{pid}-seg.nii.gz"))
        rows.append(f"{pid},{'mutant' if mutant else 'wildtype'},intact,{3 if mutant else 4}")
        genes = rng.normal(0, 1, 6) + np.array([2.0 if mutant else -2.0, 0, 0, 0, 0, 0])
        rna.append(pid + "\t" + "\t".join(f"{v:.4f}" for v in genes))
    (root / "labels.csv").write_text("\n".join(rows) + "\n")
    (root / "rnaseq.tsv").write_text("\n".join(rna) + "\n")
    return root


@pytest.fixture(scope="session")
def tiny_mri_cohort(tmp_path_factory) -> Path:
    return write_tiny_mri_cohort(tmp_path_factory.mktemp("tiny") / "cohort")


def write_tiny_dsc_cohort(root: Path, n: int = 12, seed: int = 0, shape=(16, 16, 16), timepoints: int = 40) -> Path:
    """Noise brains with a spherical tumour whose DSC bolus dips deeper when IDH-wildtype (hypervascular).

    All images share one 3 mm grid; the 4-D DSC has ``timepoints`` frames, baseline 100, a Gaussian dip at
    frame 15 of depth 60 (wildtype) or 20 (mutant) in the tumour and 30 elsewhere. Patients 1, 5, 9 ...
    are IDH-mutant codeleted grade 2, 3, 7, 11 ... IDH-mutant intact grade 3, the even ones wildtype grade 4.
    """
    import nibabel as nib
    import numpy as np

    rng = np.random.default_rng(seed)
    affine = np.diag([3.0, 3.0, 3.0, 1.0])
    grid = np.stack(np.meshgrid(*[np.arange(s) for s in shape], indexing="ij"), -1)
    bolus = np.exp(-0.5 * ((np.arange(timepoints) - 15) / 3.0) ** 2)
    rows = ["patient_id,idh,codel_1p19q,grade"]
    for i in range(n):
        pid, mutant = f"D{i:03d}", i % 2 == 1
        folder = root / pid
        folder.mkdir(parents=True)
        tumour = ((grid - rng.uniform(6, 10, 3)) ** 2).sum(-1) <= rng.uniform(2.5, 4) ** 2
        for seq in ("t1n", "t1c", "t2w", "t2f"):
            nib.save(nib.Nifti1Image(rng.normal(100, 10, shape).astype(np.float32), affine),
                     str(folder / f"{pid}-{seq}.nii.gz"))
        nib.save(nib.Nifti1Image(tumour.astype(np.uint8), affine), str(folder / f"{pid}-seg.nii.gz"))
        depth = np.where(tumour, 20.0 if mutant else 60.0, 30.0)
        dsc = 100 - depth[..., None] * bolus + rng.normal(0, 2, (*shape, timepoints))
        nib.save(nib.Nifti1Image(dsc.astype(np.float32), affine), str(folder / f"{pid}-dsc.nii.gz"))
        codel, grade = ("codeleted", 2) if i % 4 == 1 else ("intact", 3 if mutant else 4)
        rows.append(f"{pid},{'mutant' if mutant else 'wildtype'},{codel},{grade}")
    (root / "labels.csv").write_text("\n".join(rows) + "\n")
    return root


@pytest.fixture
def make_dsc_cohort():
    """:func:`write_tiny_dsc_cohort`, for tests that need another such cohort (seed, time points)."""
    return write_tiny_dsc_cohort


@pytest.fixture(scope="session")
def tiny_dsc_cohort(tmp_path_factory) -> Path:
    return write_tiny_dsc_cohort(tmp_path_factory.mktemp("tinydsc") / "cohort")


@pytest.fixture
def one_thread():
    """One intra-op torch thread: two threads on two cores shared with other jobs stall on each other."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def write_tiny_histology_cohort(root: Path, n: int = 16, seed: int = 0, side: int = 48, rois: int = 3,
                                image_signal: bool = True) -> Path:
    """ROI PNGs of pink noise; an IDH-mutant patient's ROIs have a dark purple square in the top-left quadrant.

    Patients ``H000``, ``H001`` ... alternate wildtype (even) and mutant (odd); ``rois`` ROIs of ``side`` px
    each. Labels: grade 3 if mutant else 4, 1p/19q intact, and ``cnv_EGFR`` 2 (amplified) if wildtype else 0,
    so the genomics carry IDH through EGFR. ``image_signal=False`` leaves the square out: IDH is then in the
    genomics only.
    """
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(seed)
    rows = ["patient_id,idh,codel_1p19q,grade,cnv_EGFR"]
    quarter = side // 2
    for i in range(n):
        pid, mutant = f"H{i:03d}", i % 2 == 1
        folder = root / pid / "histology"
        folder.mkdir(parents=True)
        for k in range(rois):
            rgb = np.clip(rng.normal((230, 170, 220), 12, (side, side, 3)), 0, 255)
            if mutant and image_signal:
                s = quarter * 3 // 4
                r, c = rng.integers(0, quarter - s + 1, 2)
                rgb[r:r + s, c:c + s] = rng.normal((80, 40, 140), 10, (s, s, 3))
            Image.fromarray(rgb.astype(np.uint8)).save(folder / f"{pid}_roi{k}.png")
        rows.append(f"{pid},{'mutant' if mutant else 'wildtype'},intact,{3 if mutant else 4},{0 if mutant else 2}")
    (root / "labels.csv").write_text("\n".join(rows) + "\n")
    return root


@pytest.fixture
def make_histology_cohort():
    """:func:`write_tiny_histology_cohort`, for tests of the histology methods."""
    return write_tiny_histology_cohort


@pytest.fixture(scope="session")
def tiny_histology_cohort(tmp_path_factory) -> Path:
    return write_tiny_histology_cohort(tmp_path_factory.mktemp("tinyhist") / "cohort")
