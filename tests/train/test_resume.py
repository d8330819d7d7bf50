"""A killed `gliotype train` resumes: finished folds are kept, the interrupted fold goes on from its last epoch."""

import json
import os
import signal
import subprocess
import sys
import time

import pandas as pd

ARGS = ["--method", "cnn3d", "--target", "idh", "--folds", "2", "--epochs", "8", "--seed", "3",
        "--set", "size=16", "--set", "spacing=3", "--set", "patience=50", "--set", "batch_size=4"]


def gliotype(*args, **kwargs):
    return subprocess.Popen([sys.executable, "-m", "gliotype", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, **kwargs)


def wait_for_epoch(path, epoch, proc, timeout=240):
    start = time.time()
    while time.time() - start < timeout:
        if path.is_file():
            try:
                if json.loads(path.read_text())["epoch"] >= epoch:
                    return
            except (json.JSONDecodeError, KeyError):
                pass
        assert proc.poll() is None, proc.stdout.read()
        time.sleep(0.05)
    raise TimeoutError(f"{path} never reached epoch {epoch}")


def test_killed_train_resumes(tiny_mri_cohort, tmp_path):
    run = tmp_path / "run"
    proc = gliotype("train", str(tiny_mri_cohort), "--out", str(run), *ARGS)
    wait_for_epoch(run / "work" / "fold1" / "last.json", 3, proc)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    fold0 = (run / "model" / "fold0.safetensors").stat().st_mtime_ns
    killed_at = json.loads((run / "work" / "fold1" / "last.json").read_text())["epoch"]
    assert not (run / "predictions.csv").exists() and not (run / "metrics.json").exists()

    rerun = gliotype("train", str(tiny_mri_cohort), "--out", str(run), *ARGS)
    output, _ = rerun.communicate(timeout=300)
    assert rerun.returncode == 0, output
    assert (run / "model" / "fold0.safetensors").stat().st_mtime_ns == fold0  # finished fold not retrained
    fit = json.loads((run / "model" / "fold1.json").read_text())["fit"]
    assert fit["resumed_from_epoch"] == killed_at >= 3
    assert fit["epochs_run"] == 8
    assert len(pd.read_csv(run / "predictions.csv")) == 16
