"""Cached stages: skip what is done, rebuild what changed, never trust a half-written file, skip bad patients."""

import os
import time

import nibabel as nib
import numpy as np
import pytest

from gliotype.cohort import Cohort
from gliotype.prepare import load_prepared, run_stage
from gliotype.prepare.tumour_image import TumourImageConfig, centre_fit
from gliotype.train.checkpoint import load_checkpoint, save_checkpoint


@pytest.fixture
def cohort(tiny_mri_cohort, tmp_path):
    import shutil

    shutil.copytree(tiny_mri_cohort, tmp_path / "c")
    return Cohort.from_folder(tmp_path / "c")


def test_cached_rerun_skips_and_changed_config_rebuilds(cohort, tmp_path):
    ids = cohort.patient_ids[:3]
    first = run_stage("tumour_image", cohort, ids, cache_dir=tmp_path / "cache")
    assert first.built == 3 and not first.failed
    again = run_stage("tumour_image", cohort, ids, cache_dir=tmp_path / "cache")
    assert again.built == 0 and again.done == first.done
    other = run_stage("tumour_image", cohort, ids, TumourImageConfig(size=32), cache_dir=tmp_path / "cache")
    assert other.built == 3 and set(other.done.values()).isdisjoint(first.done.values())
    # both configurations stay cached: going back to the first rebuilds nothing
    assert run_stage("tumour_image", cohort, ids, cache_dir=tmp_path / "cache").built == 0


def test_the_least_recently_used_of_more_than_four_configurations_is_removed(cohort, tmp_path):
    ids, cache = cohort.patient_ids[:1], tmp_path / "cache"
    made = {size: run_stage("tumour_image", cohort, ids, TumourImageConfig(size=size), cache_dir=cache).done[ids[0]]
            for size in (16, 24, 32, 40)}
    assert run_stage("tumour_image", cohort, ids, TumourImageConfig(size=16), cache_dir=cache).built == 0  # used again
    made[48] = run_stage("tumour_image", cohort, ids, TumourImageConfig(size=48), cache_dir=cache).done[ids[0]]
    assert sorted(p.name for p in made[16].parent.iterdir()) == sorted(made[s].name for s in (16, 32, 40, 48))


def test_changed_input_rebuilds_only_that_patient(cohort, tmp_path):
    ids = cohort.patient_ids[:3]
    run_stage("tumour_image", cohort, ids, cache_dir=tmp_path / "cache")
    path = cohort[ids[1]].images["t2w"]
    img = nib.load(path)
    nib.save(nib.Nifti1Image(np.asarray(img.dataobj) * 2, img.affine), str(path))
    result = run_stage("tumour_image", cohort, ids, cache_dir=tmp_path / "cache")
    assert result.built == 1


def test_half_written_file_is_never_trusted(cohort, tmp_path):
    ids = cohort.patient_ids[:1]
    done = run_stage("tumour_image", cohort, ids, cache_dir=tmp_path / "cache").done[ids[0]]
    done.unlink()
    killed = done.parent / f".{done.name}.abc.tmp"
    killed.write_bytes(b"partial")  # what a killed writer leaves, two hours ago
    os.utime(killed, (time.time() - 7200, time.time() - 7200))
    result = run_stage("tumour_image", cohort, ids, cache_dir=tmp_path / "cache")
    assert result.built == 1 and [p.name for p in done.parent.iterdir()] == [done.name]


def test_another_writers_fresh_temp_file_is_left_alone(cohort, tmp_path):
    ids = cohort.patient_ids[:1]
    done = run_stage("tumour_image", cohort, ids, cache_dir=tmp_path / "cache").done[ids[0]]
    done.unlink()
    writing = done.parent / f".{done.name}.xyz.tmp"  # a second run preparing the same cohort right now
    writing.write_bytes(b"in progress")
    assert run_stage("tumour_image", cohort, ids, cache_dir=tmp_path / "cache").built == 1
    assert sorted(p.name for p in done.parent.iterdir()) == sorted([done.name, writing.name])


def test_bad_patient_is_skipped_and_the_rest_prepared(cohort, tmp_path):
    bad = cohort.patient_ids[0]
    nib.save(nib.Nifti1Image(np.zeros((20, 20, 20), np.uint8), np.diag([3.0, 3, 3, 1])), str(cohort[bad].images["seg"]))
    result = run_stage("tumour_image", cohort, cohort.patient_ids[:4], cache_dir=tmp_path / "cache", workers=2)
    assert list(result.failed) == [bad] and "tumour region is empty" in result.failed[bad]
    assert len(result.done) == 3


def test_tumour_cube_contents(cohort, tmp_path):
    pid = cohort.patient_ids[1]  # IDH-mutant: bright T2 tumour
    path = run_stage("tumour_image", cohort, [pid], TumourImageConfig(size=16, spacing=3.0, margin_mm=0),
                     cache_dir=tmp_path / "cache").done[pid]
    arrays, meta = load_prepared(path)
    image, mask = arrays["image"].astype(np.float32), arrays["mask"].astype(bool)
    assert image.shape == (4, 16, 16, 16) and mask.shape == (16, 16, 16)
    seg = np.asarray(nib.load(cohort[pid].images["seg"]).dataobj) > 0
    assert mask.sum() == seg.sum()  # same spacing: a pure crop + pad
    assert np.all(image[:, ~mask] == 0)  # outside the tumour is zero
    assert image[2][mask].mean() > 2 and abs(image[0][mask].mean()) < 1  # T2 (z-scored) bright, T1 not
    assert meta["region"] == "whole" and meta["region_fell_back"]  # binary mask: no sub-regions


def test_centre_fit_pads_and_crops():
    cube, offset = centre_fit(np.ones((1, 2, 6, 4)), 4)
    assert offset.tolist() == [1, -1, 0]
    assert cube[0].sum() == 2 * 4 * 4 and cube[0, 1:3].all() and not cube[0, 0].any()


def test_checkpoint_refuses_another_method_and_a_missing_sidecar(tmp_path):
    import torch

    save_checkpoint(tmp_path / "m.safetensors", {"w": torch.ones(2)}, {"method": "cnn3d"})
    tensors, side = load_checkpoint(tmp_path / "m.safetensors", expect_method="cnn3d")
    assert tensors["w"].tolist() == [1.0, 1.0] and side["method"] == "cnn3d"
    with pytest.raises(ValueError, match="belongs to method 'cnn3d', not 'densenet3d'"):
        load_checkpoint(tmp_path / "m.safetensors", expect_method="densenet3d")
    (tmp_path / "m.safetensors").write_bytes(b"garbage")
    with pytest.raises(ValueError, match="unreadable weights"):
        load_checkpoint(tmp_path / "m.safetensors")
    (tmp_path / "m.json").unlink()
    with pytest.raises(ValueError, match="no sidecar"):
        load_checkpoint(tmp_path / "m.safetensors")
