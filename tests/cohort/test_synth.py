"""Tests of the synthetic cohort generator: layout, determinism and planted, tunable signal.

Two 10-patient cohorts (one balanced block: 5 IDH-wildtype, 3 IDH-mutant intact, 2 codeleted) share a seed: in ``signal_on`` every modality but perfusion carries the
labels; in ``perf_only`` only perfusion does. Each planted effect is checked by a statistic a
reader can recompute by hand, present where its signal is 1 and absent (p > 0.01) where it is 0.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
from PIL import Image
from scipy import ndimage, stats
from skimage import measure

from gliotype.cohort.synth import SIGNAL_KEYS, parse_signal, synthesize

N, SEED, T = 10, 3, 24
FILES = ("t1n", "t1c", "t2w", "t2f", "seg", "dsc", "fa")


@pytest.fixture(scope="module")
def signal_on(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("on")
    return synthesize(out, n_patients=N, seed=SEED, signal={"perfusion": 0.0}, n_timepoints=T)


@pytest.fixture(scope="module")
def perf_only(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("perf")
    return synthesize(out, n_patients=N, seed=SEED, signal=parse_signal("all=0,perfusion=1"), n_timepoints=T)


@pytest.fixture(scope="module")
def other_seed(tmp_path_factory) -> Path:
    return synthesize(tmp_path_factory.mktemp("other"), n_patients=2, seed=SEED + 1)


def _hashes(root: Path, pattern: str = "SYN-*/**/*") -> dict[str, str]:
    files = sorted(p for p in root.glob(pattern) if p.is_file())
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() for p in files}


def _load(root: Path, pid: str, kind: str) -> nib.Nifti1Image:
    return nib.load(root / pid / f"{pid}-{kind}.nii.gz")


def _labels(root: Path) -> pd.DataFrame:
    return pd.read_csv(root / "labels.csv")


# --- signal parsing -------------------------------------------------------------------------------


def test_parse_signal_reads_pairs_and_all():
    assert parse_signal("geometry=1.0, perfusion=0") == {"geometry": 1.0, "perfusion": 0.0}
    only = parse_signal("all=0,rnaseq=1")
    assert set(only) == set(SIGNAL_KEYS)
    assert [k for k, v in only.items() if v] == ["rnaseq"]
    assert parse_signal("") == {}


@pytest.mark.parametrize(
    ("text", "fragment"),
    [("colour=1", "valid keys are geometry, texture"), ("geometry=2", "[0, 1]"), ("geometry", "key=value")],
)
def test_parse_signal_errors_teach(text, fragment):
    with pytest.raises(ValueError) as info:
        parse_signal(text)
    assert fragment in str(info.value)


def test_synthesize_rejects_bad_arguments(tmp_path):
    with pytest.raises(ValueError, match="valid sizes are small, full"):
        synthesize(tmp_path, n_patients=1, size="huge")
    with pytest.raises(ValueError, match="valid keys"):
        synthesize(tmp_path, n_patients=1, signal={"perfussion": 1.0})
    with pytest.raises(ValueError, match="n_patients"):
        synthesize(tmp_path, n_patients=0)


# --- layout ---------------------------------------------------------------------------------------


def test_every_contract_file_exists(signal_on):
    labels = _labels(signal_on)
    assert list(labels.patient_id) == [f"SYN-{i:04d}" for i in range(1, N + 1)]
    for pid in labels.patient_id:
        for kind in FILES:
            assert (signal_on / pid / f"{pid}-{kind}.nii.gz").is_file()
        tiles = sorted((signal_on / pid / "histology").glob("*.png"))
        assert len(tiles) in (4, 6)  # 2 or 3 samples x 2 ROIs
        assert tiles[0].name == f"{pid}-L1_roi1.png"
        rgb = np.asarray(Image.open(tiles[0]))
        assert rgb.shape == (256, 256, 3) and rgb.dtype == np.uint8
    for name in ("rnaseq.tsv", "ppi.csv", "synth.json"):
        assert (signal_on / name).is_file()


def test_grids_are_consistent_and_ras(signal_on):
    for pid in _labels(signal_on).patient_id:
        ref = _load(signal_on, pid, "t1n")
        assert ref.shape == (91, 109, 91)
        assert np.allclose(np.diag(ref.affine), [2, 2, 2, 1]) and nib.aff2axcodes(ref.affine) == ("R", "A", "S")
        for kind in ("t1c", "t2w", "t2f", "seg", "fa"):
            img = _load(signal_on, pid, kind)
            assert img.shape == ref.shape and np.allclose(img.affine, ref.affine)
        dsc = _load(signal_on, pid, "dsc")
        assert dsc.shape == (*ref.shape, T) and np.allclose(dsc.affine, ref.affine)
        assert dsc.header.get_zooms()[3] == pytest.approx(1.5)


def test_default_dsc_length_is_45_to_60(other_seed):
    for pid in _labels(other_seed).patient_id:
        assert _load(other_seed, pid, "dsc").ndim == 4
        assert 45 <= _load(other_seed, pid, "dsc").shape[3] <= 60


def test_segmentation_labels_and_core(signal_on):
    for pid in _labels(signal_on).patient_id:
        seg = np.asarray(_load(signal_on, pid, "seg").dataobj)
        assert set(np.unique(seg)) <= {0, 1, 2, 3}
        assert np.isin(seg, (1, 3)).sum() > 20
        brain = np.asarray(_load(signal_on, pid, "t1n").dataobj) > 0
        assert not (seg > 0)[~brain].any()  # no tumour outside the brain


def test_tissue_contrast(signal_on):
    """T1: WM > GM > CSF; T2 reversed; FLAIR: CSF darkest. FA: WM 0.4-0.7."""
    pid = "SYN-0001"
    seg = np.asarray(_load(signal_on, pid, "seg").dataobj)
    fa = np.asarray(_load(signal_on, pid, "fa").dataobj)
    from gliotype.cohort.synth.anatomy import render_tissue
    from gliotype.cohort.synth.grids import structural_grid

    meta = json.loads((signal_on / "synth.json").read_text())
    tissue = render_tissue(structural_grid("small"), np.array(meta["patients"][pid]["jitter"]))
    far = ndimage.distance_transform_edt(seg == 0) > 15
    classes = {name: (getattr(tissue, name) > 0.9) & far for name in ("gm", "wm", "csf")}
    mean = {
        kind: {c: float(np.asarray(_load(signal_on, pid, kind).dataobj)[m].mean()) for c, m in classes.items()}
        for kind in ("t1n", "t2w", "t2f")
    }
    assert mean["t1n"]["wm"] > mean["t1n"]["gm"] > mean["t1n"]["csf"]
    assert mean["t2w"]["csf"] > mean["t2w"]["gm"] > mean["t2w"]["wm"]
    assert mean["t2f"]["csf"] < min(mean["t2f"]["gm"], mean["t2f"]["wm"])
    assert 0.4 < fa[classes["wm"]].mean() < 0.7 and fa[classes["csf"]].mean() < 0.15


def test_labels_are_plausible(signal_on):
    labels = _labels(signal_on)
    assert set(labels.idh) == {"mutant", "wildtype"}
    assert (labels[labels.codel_1p19q == "codeleted"].idh == "mutant").all()
    assert set(labels.grade) <= {2, 3, 4}
    cnv = labels[[c for c in labels if c.startswith("cnv_")]]
    assert list(cnv.columns) == ["cnv_EGFR", "cnv_PTEN", "cnv_CARD11", "cnv_FGFR2"]
    assert cnv.abs().max().max() <= 2
    assert (labels.idh == "wildtype").sum() == 5 and (labels.codel_1p19q == "codeleted").sum() == 2


def test_rnaseq_and_ppi_tables(signal_on):
    rna = pd.read_csv(signal_on / "rnaseq.tsv", sep="\t")
    assert list(rna.columns[:2]) == ["patient_id", "sample_id"]
    assert 450 <= rna.shape[1] - 2 <= 550
    assert {"IDH1", "EGFR", "PTEN", "CDKN2A", "ATRX", "TP53", "OLIG2", "GFAP"} <= set(rna.columns)
    assert not [c for c in rna.columns if "mut" in c.lower() or "codel" in c.lower()]
    assert set(rna.patient_id) == set(_labels(signal_on).patient_id)
    tiles = {p.name.split("_roi")[0] for p in signal_on.glob("SYN-*/histology/*.png")}
    assert set(rna.sample_id) == tiles
    ppi = pd.read_csv(signal_on / "ppi.csv")
    assert list(ppi.columns) == ["symbol_1", "symbol_2", "combined_score"]
    assert set(ppi.symbol_1) | set(ppi.symbol_2) <= set(rna.columns[2:])


# --- determinism -----------------------------------------------------------------------------------


def test_same_seed_gives_identical_bytes(signal_on, tmp_path):
    again = synthesize(tmp_path, n_patients=2, seed=SEED, signal={"perfusion": 0.0}, n_timepoints=T)
    first = _hashes(again)
    assert len(first) > 20
    reference = {k: v for k, v in _hashes(signal_on).items() if k.split("/")[0] in ("SYN-0001", "SYN-0002")}
    assert first == reference  # a patient does not depend on the cohort size either


def test_skipping_modalities_in_parallel_leaves_the_other_files_unchanged(signal_on, tmp_path):
    lean = synthesize(tmp_path, n_patients=2, seed=SEED, signal={"perfusion": 0.0}, n_timepoints=T,
                      optional=(), workers=2)
    files = _hashes(lean)
    assert sorted({k.rsplit("-", 1)[-1] for k in files}) == ["seg.nii.gz", "t1c.nii.gz", "t1n.nii.gz", "t2f.nii.gz",
                                                           "t2w.nii.gz"]
    assert files == {k: v for k, v in _hashes(signal_on).items() if k in files}
    assert (lean / "labels.csv").read_text().splitlines() == (signal_on / "labels.csv").read_text().splitlines()[:3]
    assert len(files) == 10
    with pytest.raises(ValueError, match="optional modalities"):
        synthesize(tmp_path / "x", n_patients=1, optional=("perfusion",))


def test_other_seed_differs(signal_on, other_seed):
    ours, theirs = _hashes(signal_on), _hashes(other_seed)
    shared = set(ours) & set(theirs)
    assert shared and all(ours[k] != theirs[k] for k in shared if k.endswith(".nii.gz"))


def test_signal_changes_no_label(signal_on, perf_only):
    assert _labels(signal_on).equals(_labels(perf_only))


# --- planted signal ---------------------------------------------------------------------------------


def _groups(root: Path, values: dict[str, float], column: str, positive: str) -> tuple[list, list]:
    labels = _labels(root).set_index("patient_id")[column]
    yes = [v for pid, v in values.items() if labels[pid] == positive]
    no = [v for pid, v in values.items() if labels[pid] != positive]
    return yes, no


def _p_greater(yes, no) -> float:
    return stats.mannwhitneyu(yes, no, alternative="greater").pvalue


def _p_two_sided(yes, no) -> float:
    return stats.mannwhitneyu(yes, no, alternative="two-sided").pvalue


def _sphericity(root: Path) -> dict[str, float]:
    """pi^(1/3) (6V)^(2/3) / A of the tumour core surface (1 for a ball, lower when lobulated)."""
    out = {}
    for pid in _labels(root).patient_id:
        core = np.isin(np.asarray(_load(root, pid, "seg").dataobj), (1, 3)).astype(float)
        verts, faces, _, _ = measure.marching_cubes(np.pad(core, 1), 0.5, spacing=(2, 2, 2))
        area = measure.mesh_surface_area(verts, faces)
        out[pid] = np.pi ** (1 / 3) * (6 * core.sum() * 8) ** (2 / 3) / area
    return out


def test_geometry_signal(signal_on, perf_only):
    yes, no = _groups(signal_on, _sphericity(signal_on), "idh", "mutant")
    assert _p_greater(yes, no) < 0.01 and np.median(yes) - np.median(no) > 0.05
    assert _p_two_sided(*_groups(perf_only, _sphericity(perf_only), "idh", "mutant")) > 0.01


def _rcbv(root: Path) -> dict[str, float]:
    """rCBV proxy: 90th percentile over the core of the summed dR2* = -ln(S/S0), over its median in
    normal-appearing white matter (FA > 0.35, >= 10 mm from the lesion)."""
    out = {}
    for pid in _labels(root).patient_id:
        seg = np.asarray(_load(root, pid, "seg").dataobj)
        dsc = np.asarray(_load(root, pid, "dsc").dataobj).astype(float)
        fa = np.asarray(_load(root, pid, "fa").dataobj)
        baseline = np.maximum(dsc[..., :5].mean(-1), 1)[..., None]
        drop = np.clip(-np.log(np.clip(dsc, 1, None) / baseline), 0, None).sum(-1)
        normal = (fa > 0.35) & (ndimage.distance_transform_edt(seg == 0) > 5)
        out[pid] = np.percentile(drop[np.isin(seg, (1, 3))], 90) / np.median(drop[normal])
    return out


def test_perfusion_signal(signal_on, perf_only):
    yes, no = _groups(perf_only, _rcbv(perf_only), "idh", "wildtype")
    assert _p_greater(yes, no) < 0.01 and np.median(yes) > 1.8 * np.median(no)
    assert _p_two_sided(*_groups(signal_on, _rcbv(signal_on), "idh", "wildtype")) > 0.01


def _enhancing_fraction(root: Path) -> dict[str, float]:
    """Fraction of the core's outer shell (core minus its erosion) labelled enhancing (3)."""
    out = {}
    for pid in _labels(root).patient_id:
        seg = np.asarray(_load(root, pid, "seg").dataobj)
        core = np.isin(seg, (1, 3))
        shell = core & ~ndimage.binary_erosion(core)
        out[pid] = (seg[shell] == 3).mean()
    return out


def test_enhancement_signal(signal_on, perf_only):
    yes, no = _groups(signal_on, _enhancing_fraction(signal_on), "idh", "wildtype")
    assert _p_greater(yes, no) < 0.01 and np.median(yes) > 0.8
    assert _p_two_sided(*_groups(perf_only, _enhancing_fraction(perf_only), "idh", "wildtype")) > 0.01


def _centroid_y(root: Path) -> dict[str, float]:
    out = {}
    for pid in _labels(root).patient_id:
        img = _load(root, pid, "seg")
        ijk = np.argwhere(np.isin(np.asarray(img.dataobj), (1, 3))).mean(0)
        out[pid] = float(nib.affines.apply_affine(img.affine, ijk)[1])
    return out


def test_location_signal(signal_on, perf_only):
    yes, no = _groups(signal_on, _centroid_y(signal_on), "codel_1p19q", "codeleted")
    assert min(yes) > 0 and _p_greater(yes, no) < 0.05  # codeleted: all frontal
    assert _p_two_sided(*_groups(perf_only, _centroid_y(perf_only), "codel_1p19q", "codeleted")) > 0.01


def _callosal_fa(root: Path) -> dict[str, float]:
    """Mean FA of white matter in a central box (corpus callosum body), >= 20 mm from the lesion."""
    out = {}
    for pid in _labels(root).patient_id:
        img = _load(root, pid, "fa")
        fa = np.asarray(img.dataobj)
        seg = np.asarray(_load(root, pid, "seg").dataobj)
        x, y, z = np.moveaxis(nib.affines.apply_affine(img.affine, np.indices(fa.shape).transpose(1, 2, 3, 0)), -1, 0)
        box = (np.abs(x) < 14) & (y > -30) & (y < 20) & (z > 14) & (z < 28)
        far = ndimage.distance_transform_edt(seg == 0, sampling=2.0) > 20
        voxels = fa[box & far & (fa > 0.3)]
        if voxels.size > 20:  # else the lesion covers the box: no remote measurement
            out[pid] = float(voxels.mean())
    return out


def test_network_signal(signal_on, perf_only):
    yes, no = _groups(signal_on, _callosal_fa(signal_on), "idh", "wildtype")
    assert _p_greater(no, yes) < 0.01 and np.median(no) - np.median(yes) > 0.05
    assert _p_two_sided(*_groups(perf_only, _callosal_fa(perf_only), "idh", "wildtype")) > 0.01


def _nuclear_fraction(root: Path) -> dict[str, float]:
    """Fraction of hematoxylin-dark pixels (red channel < 170) over a patient's ROI tiles."""
    out = {}
    for pid in _labels(root).patient_id:
        tiles = [np.asarray(Image.open(p)) for p in sorted((root / pid / "histology").glob("*.png"))]
        out[pid] = float(np.mean([(t[..., 0] < 170).mean() for t in tiles]))
    return out


def test_histology_signal(signal_on, perf_only):
    grade = _labels(signal_on).set_index("patient_id").grade
    on, off = _nuclear_fraction(signal_on), _nuclear_fraction(perf_only)
    assert stats.spearmanr(grade[list(on)], list(on.values()))[0] > 0.6
    assert stats.spearmanr(grade[list(off)], list(off.values())).pvalue > 0.01


def _module_score(root: Path, module: str) -> dict[str, float]:
    genes = json.loads((root / "synth.json").read_text())["modules"][module]
    rna = pd.read_csv(root / "rnaseq.tsv", sep="\t")
    return rna.groupby("patient_id")[genes].mean().mean(axis=1).to_dict()


def test_rnaseq_signal(signal_on, perf_only):
    yes, no = _groups(signal_on, _module_score(signal_on, "GM01"), "idh", "mutant")
    assert _p_greater(yes, no) < 0.01 and np.median(yes) - np.median(no) > 0.8
    assert _p_two_sided(*_groups(perf_only, _module_score(perf_only, "GM01"), "idh", "mutant")) > 0.01


def test_synth_json_ground_truth(signal_on):
    meta = json.loads((signal_on / "synth.json").read_text())
    assert meta["seed"] == SEED and meta["size"] == "small" and meta["signal"]["perfusion"] == 0.0
    assert set(meta["signal"]) == set(SIGNAL_KEYS)
    patient = meta["patients"]["SYN-0001"]
    seg = np.asarray(_load(signal_on, "SYN-0001", "seg").dataobj)
    i, j, k = np.round(patient["tumour_centre_voxel"]).astype(int)
    assert seg[max(i - 3, 0) : i + 4, max(j - 3, 0) : j + 4, max(k - 3, 0) : k + 4].any()
    assert set(patient["lineage_genes"]) == set(patient["samples"])
    assert all(len(v) == 5 for v in patient["lineage_genes"].values())
    assert {"GM01", "GM10"} <= set(meta["modules"]) and "GM01" in meta["genotype_shifts"]
