"""``fit_torch`` under DDP: two CPU processes on gloo, started by ``torchrun``, fit what one process fits.

The tiny run is deterministic: a 2-8-2 MLP (no dropout, no batch norm, unweighted cross-entropy) on 16
separable points, shuffled by the fit's seeded order. One process with batch 4 and two ranks with batch 2
take the same 4 points per optimiser step (each rank every other one of the same order), and DDP averages
the two half-batch gradients into the whole-batch one. The 4 validation points are split 2 + 2 across the
ranks, and rank 1 holds the mislabelled one: its own loss turns upward epochs before the mean over all four
does, so ranks deciding alone would stop in different epochs (and hang), unless the loss is averaged over
both, as it must be.

Run as a script (``torchrun --nproc_per_node 2 tests/train/test_ddp.py OUT``) each rank writes the weights
and summary that ``fit_torch`` returned to it into ``OUT``.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file
from torch import nn
from typer.testing import CliRunner

from gliotype.cli import app
from gliotype.methods.base import Distributed, FitContext
from gliotype.methods.rnaseq_lr import RnaseqLR
from gliotype.nn.rna import RNAEncoder, RNAEncoderConfig
from gliotype.train.fit import Classifier, fit_torch
from gliotype.train.parallel import use_channels_last

EPOCHS, PATIENCE = 20, 3


def points() -> tuple[list, np.ndarray, list, np.ndarray]:
    """16 training points, class = sign of x (+-1 with small seeded jitter); 4 validation points of which
    index 1 (rank 1's first) is labelled against its side."""
    jitter = torch.randn(16, 2, generator=torch.Generator().manual_seed(0)) * 0.3
    y = np.arange(16) % 2
    train = [torch.tensor([2.0 * float(c) - 1.0, 0.0]) + j for c, j in zip(y, jitter)]
    val = [torch.tensor(v) for v in ([-1.0, 0.2], [-0.8, -0.1], [1.1, 0.0], [0.9, 0.3])]
    return train, y, val, np.array([0, 1, 1, 1])  # the second point lies on the class-0 side


def step(model, x, y, training):
    logits = model(x)
    return nn.functional.cross_entropy(logits, y), logits


def collate(batch):
    xs, ys = zip(*batch)
    return torch.stack(xs), torch.tensor(ys)


def fit_tiny(work_dir: Path, batch_size: int, distributed: Distributed | None = None):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(2, 8), nn.Tanh(), nn.Linear(8, 2))
    train, y, val, y_val = points()
    return fit_torch(model, step, collate, train, y, val, y_val, work_dir=work_dir, epochs=EPOCHS,
                     batch_size=batch_size, lr=0.01, weight_decay=0.0, patience=PATIENCE, seed=7, device="cpu",
                     sidecar={"method": "tiny"}, distributed=distributed)


def fit_masked_rna(work_dir: Path, distributed: Distributed):
    """rnaseq's pretraining shape: 4 gene tokens, one masked per sample, so a batch of 2 leaves at least two
    token decoders without a gradient."""
    torch.manual_seed(0)
    encoder = RNAEncoder(RNAEncoderConfig(token_sizes=(3, 3, 3, 3), dim=16, heads=2, projection=8),
                         [np.arange(k, k + 3) for k in range(0, 12, 3)])
    x = list(torch.randn(16, 12, generator=torch.Generator().manual_seed(1)))

    def masked_step(model, batch, ids, training):
        return model.reconstruction_loss(batch, model.sample_mask(len(batch)))[0], None

    return fit_torch(encoder, masked_step, collate, x, np.zeros(16, np.int64), [], np.zeros(0, np.int64),
                     work_dir=work_dir, epochs=2, batch_size=2, lr=0.01, weight_decay=0.0, patience=2, seed=7,
                     device="cpu", sidecar={"method": "tiny"}, distributed=distributed)


def torchrun(out: Path, *mode: str, expect_ok: bool = True) -> str:
    """Run this file as a script under ``torchrun`` with two ranks; its output. Ranks out of step hang: after
    a timeout torchrun is told to stop (SIGTERM: it ends its ranks, which run in sessions of their own)."""
    proc = subprocess.Popen([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                             __file__, str(out), *mode], env={**os.environ, "OMP_NUM_THREADS": "1"}, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        output, _ = proc.communicate(timeout=150)
    except subprocess.TimeoutExpired:
        proc.terminate()
        pytest.fail(f"torchrun did not finish in 150 s (ranks out of step?):\n{proc.communicate(timeout=90)[0][-3000:]}")
    assert (proc.returncode == 0) == expect_ok, output[-6000:]
    return output


def test_two_gloo_ranks_under_torchrun_fit_what_one_process_fits(tmp_path):
    weights, summary = fit_tiny(tmp_path / "one", batch_size=4)
    assert PATIENCE < summary["epochs_run"] < EPOCHS and summary["best_epoch"] > 1  # early stopping decided it
    assert summary["world_size"] == 1

    torchrun(tmp_path / "ddp")
    ranks = [(load_file(tmp_path / "ddp" / f"rank{r}.safetensors"),
              json.loads((tmp_path / "ddp" / f"rank{r}.json").read_text())) for r in (0, 1)]
    for rank_weights, rank_summary in ranks:
        assert rank_summary["world_size"] == 2
        assert (rank_summary["epochs_run"], rank_summary["best_epoch"]) == (summary["epochs_run"], summary["best_epoch"])
        assert rank_summary["best_val_loss"] == pytest.approx(summary["best_val_loss"], rel=1e-5)
        for name, value in weights.items():
            torch.testing.assert_close(rank_weights[name], value, rtol=1e-5, atol=1e-6)
    assert all(torch.equal(ranks[0][0][k], ranks[1][0][k]) for k in weights)  # every rank loaded rank 0's file
    last = json.loads((tmp_path / "ddp" / "work" / "last.json").read_text())
    assert last["epoch"] == summary["epochs_run"]


def test_masked_token_decoders_without_a_gradient_need_and_get_unused_parameter_detection(tmp_path):
    assert Distributed(devices=2, strategy="ddp").finding_unused_parameters().strategy == "ddp_find_unused_parameters_true"
    assert Distributed().finding_unused_parameters() == Distributed()  # one process: no DDP at all
    assert "enable the detection of unused parameters" in torchrun(tmp_path / "plain", "rna-plain-ddp", expect_ok=False)
    torchrun(tmp_path / "found", "rna")
    ranks = [load_file(tmp_path / "found" / f"rank{r}.safetensors") for r in (0, 1)]
    assert ranks[0].keys() == ranks[1].keys() and all(torch.equal(ranks[0][k], ranks[1][k]) for k in ranks[0])
    assert json.loads((tmp_path / "found" / "rank1.json").read_text())["world_size"] == 2


def test_rnaseq_pretraining_alone_looks_for_unused_parameters(monkeypatch, tmp_path):
    from gliotype.methods import rnaseq

    seen = []

    def fit_torch(model, *args, **kwargs):
        seen.append((kwargs["work_dir"].name, kwargs["distributed"]))
        return model.state_dict(), {}

    monkeypatch.setattr(rnaseq, "fit_torch", fit_torch)
    method = rnaseq.Rnaseq(rnaseq.RnaseqConfig())
    ctx = FitContext(tmp_path, distributed=Distributed(devices=2, strategy="ddp"))
    encoder = RNAEncoder(RNAEncoderConfig(token_sizes=(2,), dim=8, heads=2), [np.arange(2)])
    method.pretrain(encoder, torch.zeros(4, 2), np.arange(4), ctx)
    method._fit(encoder, None, torch.zeros(4, 2), np.zeros(4), tmp_path / "finetune", 1, 0.1, ctx)
    assert seen == [("pretrain", Distributed(2, 1, "ddp_find_unused_parameters_true")),
                    ("finetune", Distributed(2, 1, "ddp"))]


def test_torchrun_with_other_devices_is_refused_with_the_fix(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCHELASTIC_RUN_ID", "test")
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "2")
    with pytest.raises(ValueError, match=r"torchrun started 2 processes .* pass --devices 2 --num-nodes 1"):
        fit_tiny(tmp_path, batch_size=2)


def test_distributed_settings_are_checked():
    with pytest.raises(ValueError, match="devices must be .* got 0"):
        Distributed(devices=0)
    with pytest.raises(ValueError, match="num_nodes"):
        Distributed(num_nodes=0)
    assert Distributed(devices="auto").devices == "auto"
    result = CliRunner().invoke(app, ["train", "C", "--method", "cnn3d", "--target", "idh", "--out", "R",
                                      "--devices", "two"])
    assert result.exit_code == 2 and "--devices takes a number of processes or 'auto', not 'two'" in result.output
    result = CliRunner().invoke(app, ["train", "C", "--method", "cnn3d", "--target", "idh", "--out", "R",
                                      "--strategy", "dpp"])
    assert result.exit_code == 1 and "unknown strategy 'dpp' (did you mean 'ddp'?)" in result.output


def test_train_options_reach_every_fold_and_stay_out_of_config_yaml(tiny_mri_cohort, tmp_path, monkeypatch):
    seen = []
    fit = RnaseqLR.fit
    monkeypatch.setattr(RnaseqLR, "fit", lambda self, *args: seen.append(args[-1]) or fit(self, *args))
    result = CliRunner().invoke(app, ["train", str(tiny_mri_cohort), "--method", "rnaseq-lr", "--target", "idh",
                                      "--folds", "2", "--out", str(tmp_path / "run"), "--devices", "auto",
                                      "--num-nodes", "1", "--strategy", "ddp", "--memory-format", "channels_last_3d"])
    assert result.exit_code == 0, result.output
    assert [(c.distributed, c.memory_format) for c in seen] == [(Distributed("auto", 1, "ddp"), "channels_last_3d")] * 2
    assert "ddp" not in (tmp_path / "run" / "config.yaml").read_text()  # like --device: how, not what


def test_channels_last_3d_only_on_cuda_and_only_5d_inputs():
    assert use_channels_last("channels_last_3d", True) and not use_channels_last("channels_last_3d", False)
    assert not use_channels_last("contiguous", True)
    with pytest.raises(ValueError, match="unknown memory format 'channels_last' .did you mean 'channels_last_3d'"):
        use_channels_last("channels_last", True)
    module = Classifier(nn.Identity(), step, 0.1, 0.0, channels_last=True)
    batch = module._format({"image": torch.zeros(2, 3, 4, 5, 6), "mask": torch.zeros(2, 5)})
    assert batch["image"].is_contiguous(memory_format=torch.channels_last_3d)
    assert not batch["image"].is_contiguous() and batch["mask"].is_contiguous()


if __name__ == "__main__":  # one rank of a torchrun test
    out, mode = Path(sys.argv[1]), sys.argv[2] if len(sys.argv) > 2 else "tiny"
    ddp = Distributed(devices=2, strategy="ddp")
    if mode == "tiny":
        weights, summary = fit_tiny(out / "work", batch_size=2, distributed=ddp)
    else:
        weights, summary = fit_masked_rna(out / "work", ddp if mode == "rna-plain-ddp" else ddp.finding_unused_parameters())
    rank = os.environ["RANK"]
    save_file(weights, out / f"rank{rank}.safetensors")
    (out / f"rank{rank}.json").write_text(json.dumps(summary))
