"""Each kind of bad input is reported by name, and the good patients stay usable."""

import gzip

import nibabel as nib
import numpy as np
import pytest

from gliotype.cohort import Cohort, validate

SHAPE = (12, 12, 10)
AFFINE = np.diag([2.0, 2.0, 2.0, 1.0])


def write(path, data, affine=AFFINE):
    nib.save(nib.Nifti1Image(np.asarray(data), affine), str(path))


def write_case(root, pid, *, seg=None, dsc_shape=SHAPE + (20,), t1n=None, affine=AFFINE):
    folder = root / pid
    folder.mkdir()
    rng = np.random.default_rng(0)
    for seq in ("t1c", "t2w", "t2f"):
        write(folder / f"{pid}-{seq}.nii.gz", rng.random(SHAPE).astype(np.float32) + 1)
    write(folder / f"{pid}-t1n.nii.gz", t1n if t1n is not None else rng.random(SHAPE).astype(np.float32) + 1, affine)
    if seg is None:
        seg = np.zeros(SHAPE, np.uint8)
        seg[4:8, 4:8, 3:6] = 2
        seg[5:7, 5:7, 4:5] = 1
    write(folder / f"{pid}-seg.nii.gz", seg)
    write(folder / f"{pid}-dsc.nii.gz", rng.random(dsc_shape).astype(np.float32))
    return folder


@pytest.fixture
def bad_cohort(tmp_path):
    rows = ["patient_id,idh,codel_1p19q,grade"]
    for pid in ("GOOD1", "GOOD2"):
        write_case(tmp_path, pid)
        rows.append(f"{pid},mutant,intact,2")
    folder = write_case(tmp_path, "TRUNC")
    data = (folder / "TRUNC-t2w.nii.gz").read_bytes()
    (folder / "TRUNC-t2w.nii.gz").write_bytes(gzip.compress(gzip.decompress(data)[:2000]))
    folder = write_case(tmp_path, "NOTNII")
    (folder / "NOTNII-t2f.nii.gz").write_text("this is a DICOM export log, not an image")
    write_case(tmp_path, "EMPTYSEG", seg=np.zeros(SHAPE, np.uint8))
    seg = np.zeros(SHAPE, np.uint8)
    seg[3:6, 3:6, 3:6] = 7
    write_case(tmp_path, "BADSEG", seg=seg)
    nan = np.ones(SHAPE, np.float32)
    nan[0, 0, 0] = np.nan
    write_case(tmp_path, "NANVOX", t1n=nan)
    write_case(tmp_path, "DSC3D", dsc_shape=SHAPE)
    shifted = AFFINE.copy()
    shifted[0, 3] = 5.0
    write_case(tmp_path, "OFFGRID", affine=shifted)
    write_case(tmp_path, "BADLABEL")
    write_case(tmp_path, "NOROW")
    rows += [f"{pid},wildtype,intact,4" for pid in ("TRUNC", "NOTNII", "EMPTYSEG", "BADSEG", "NANVOX", "DSC3D", "OFFGRID")]
    rows += ["BADLABEL,mutant,intact,G7", "GOOD2,wildtype,intact,4", "NOFOLDER,mutant,intact,3"]
    (tmp_path / "labels.csv").write_text("\n".join(rows) + "\n")
    return tmp_path


EXPECTED = {  # patient -> (file in the message, words in the message, modality made unusable)
    "TRUNC": ("TRUNC-t2w.nii.gz", "truncated", "t2w"),
    "NOTNII": ("NOTNII-t2f.nii.gz", "not a readable NIfTI", "t2f"),
    "EMPTYSEG": ("EMPTYSEG-seg.nii.gz", "mask is empty", "seg"),
    "BADSEG": ("BADSEG-seg.nii.gz", "label values [7]", "seg"),
    "NANVOX": ("NANVOX-t1n.nii.gz", "1 voxels are NaN", "t1n"),
    "DSC3D": ("DSC3D-dsc.nii.gz", "expected a 4-D", "dsc"),
    "OFFGRID": ("OFFGRID-t1c.nii.gz", "not on the grid of OFFGRID-t1n.nii.gz", "t1c"),
    "BADLABEL": ("labels.csv", "grade value 'G7' is not a known class", "labels"),
    "GOOD2": ("labels.csv", "more than one row", "labels"),
    "NOFOLDER": ("labels.csv", "no folder", None),
    "NOROW": ("labels.csv", "no row in labels.csv", "labels"),
}


def test_each_bad_input_is_reported_by_name(bad_cohort):
    report = validate(Cohort.from_folder(bad_cohort))
    by_patient = {}
    for problem in report.problems:
        by_patient.setdefault(problem.patient_id, []).append(problem)
    assert set(by_patient) == set(EXPECTED)
    for pid, (file, words, modality) in EXPECTED.items():
        assert any(p.file == file and words in p.message and p.modality == modality for p in by_patient[pid]), \
            (pid, [str(p) for p in by_patient[pid]])


def test_good_patients_stay_usable(bad_cohort):
    report = validate(Cohort.from_folder(bad_cohort))
    assert report.ok
    assert report.usable("GOOD1", needs=["mri", "seg", "dsc"])
    # a problem with one modality leaves the patient usable for methods that do not read it
    assert report.usable("DSC3D", needs=["mri", "seg"]) and not report.usable("DSC3D", needs=["dsc"])
    assert not report.usable("NANVOX", needs=["mri"]) and report.usable("NANVOX", needs=["dsc"])
    for pid in ("BADLABEL", "GOOD2", "NOFOLDER", "NOROW"):
        assert not report.usable(pid)


@pytest.mark.realdata
def test_real_tcga_patient(shared_data):
    report = validate(Cohort.from_folder(shared_data / "tcga-mri"))
    case = report.cohort["TCGA-DU-7294"]
    assert report.problems == []
    assert {m: case.has(m) for m in ("t1n", "t1c", "t2w", "t2f", "seg", "dsc")} == \
        {"t1n": True, "t1c": True, "t2w": True, "t2f": True, "seg": True, "dsc": False}
    assert (case.label("idh"), case.label("codel_1p19q"), case.label("grade")) == ("mutant", "codeleted", "2")


@pytest.mark.realdata
def test_real_rnaseq_cohort_has_no_folders(shared_data):
    cohort = Cohort.from_folder(shared_data / "tcga-rnaseq")
    assert len(cohort) == 200 and cohort.problems == []
    assert all(c.has("rnaseq") and not c.has("mri") for c in cohort)
    table = cohort.rnaseq()
    assert table.shape == (200, 1545) and table.columns[0] == "patient_id"


def test_validating_only_some_modalities_leaves_the_others_unopened(bad_cohort):
    report = validate(Cohort.from_folder(bad_cohort), modalities=["dsc"])
    flagged = {p.patient_id for p in report.problems if p.modality not in ("labels", None)}
    assert flagged == {"DSC3D"}  # the broken t2w / t2f / seg / t1n files were not read
