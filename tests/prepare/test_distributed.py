"""Preparation on a Dask distributed cluster: the same cache bytes as one process, bad patients reported."""

import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from gliotype.cli import app
from gliotype.cohort import Cohort
from gliotype.prepare import run_stage
from gliotype.prepare.tumour_image import TumourImageConfig

SMALL = TumourImageConfig(size=16, spacing=3.0, margin_mm=0)
IDS = ["P000", "P001", "P002", "P003", "P004"]


@pytest.fixture(scope="module")
def scheduler():
    """The address of a two-process local cluster (one thread each), closed after this module."""
    from distributed import LocalCluster

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
        yield cluster.scheduler_address


@pytest.fixture
def cohort(tiny_mri_cohort, tmp_path):
    shutil.copytree(tiny_mri_cohort, tmp_path / "c")
    return Cohort.from_folder(tmp_path / "c")


def files(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_cluster_cache_is_byte_identical_to_one_process(cohort, scheduler, tmp_path):
    there = run_stage("tumour_image", cohort, IDS, SMALL, cache_dir=tmp_path / "dask", scheduler=scheduler)
    here = run_stage("tumour_image", cohort, IDS, SMALL, cache_dir=tmp_path / "local")
    assert there.built == here.built == 5 and not there.failed and not here.failed
    dask_files, local_files = files(tmp_path / "dask"), files(tmp_path / "local")
    assert sorted(dask_files) == [f"tumour_image/{pid}/{here.done[pid].name}" for pid in IDS]
    assert dask_files == local_files
    again = run_stage("tumour_image", cohort, IDS, SMALL, cache_dir=tmp_path / "dask", scheduler=scheduler, workers=4)
    assert again.built == 0 and len(again.done) == 5  # the scheduler wins over workers; the cache is reused


def test_corrupt_patient_fails_and_the_others_are_prepared(cohort, scheduler, tmp_path):
    cohort["P001"].images["t2w"].write_bytes(b"not a nifti")
    result = run_stage("tumour_image", cohort, IDS, SMALL, cache_dir=tmp_path / "cache", scheduler=scheduler)
    assert list(result.failed) == ["P001"] and "P001-t2w.nii.gz" in result.failed["P001"]
    assert sorted(result.done) == ["P000", "P002", "P003", "P004"] and result.built == 4


@pytest.mark.parametrize("where", ["on a Dask worker", "in a worker process"])
def test_task_raising_on_a_worker_is_that_patients_failure(cohort, scheduler, tmp_path, where):
    (tmp_path / "cache" / "tumour_image").mkdir(parents=True)
    (tmp_path / "cache" / "tumour_image" / "P002").write_text("a file where the patient's folder goes")
    run = {"scheduler": scheduler} if where == "on a Dask worker" else {"workers": 2}
    result = run_stage("tumour_image", cohort, IDS, SMALL, cache_dir=tmp_path / "cache", **run)
    assert list(result.failed) == ["P002"]
    assert result.failed["P002"].startswith(f"FileExistsError {where}") and "P002" in result.failed["P002"]
    assert sorted(result.done) == ["P000", "P001", "P003", "P004"]


def test_unreachable_scheduler_is_one_error_naming_the_address(cohort, tmp_path):
    for address, why in [("tcp://127.0.0.1", "missing port"), ("foo://127.0.0.1:8786", "unknown address scheme")]:
        message = rf"cannot reach the Dask scheduler at '{address}' \({why}.*`dask scheduler`"
        with pytest.raises(ValueError, match=message):
            run_stage("tumour_image", cohort, IDS, SMALL, cache_dir=tmp_path / "cache", scheduler=address)


def test_unanswered_scheduler_times_out_with_the_fix(cohort, tmp_path):
    import dask

    with dask.config.set({"distributed.comm.timeouts.connect": "1s"}):
        with pytest.raises(ValueError, match=r"at 'tcp://127.0.0.1:9' \(Timed out .*`dask worker tcp://HOST:8786`"):
            run_stage("tumour_image", cohort, IDS, SMALL, cache_dir=tmp_path / "cache", scheduler="tcp://127.0.0.1:9")


def test_cli_prepare_on_the_cluster(cohort, scheduler, tmp_path):
    runner = CliRunner()
    args = ["prepare", str(cohort.root), "--stages", "tumour_image", "--cache", str(tmp_path / "cache")]
    result = runner.invoke(app, [*args, "--scheduler", scheduler, "--workers", "3"])
    assert result.exit_code == 0, result.output
    assert "tumour_image: 16 patients ready (16 built, 0 cached), 0 failed" in result.output
    bad = runner.invoke(app, [*args, "--scheduler", "tcp://127.0.0.1"])
    assert bad.exit_code == 1 and bad.output.count("\n") == 1
    assert bad.output.startswith("error: cannot reach the Dask scheduler at 'tcp://127.0.0.1'")
