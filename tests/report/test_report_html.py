"""write_report: one self-contained HTML file whose figures decode and whose tables hold the metrics."""

import base64
import json
import re
import struct
from html.parser import HTMLParser

import numpy as np
import pandas as pd
import pytest

from gliotype.evaluate import metrics_report
from gliotype.report import write_report

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def make_run(folder, signal, classes=("wildtype", "mutant"), target="idh", n=40, seed=0, extras=True):
    """A run folder of n patients whose probabilities carry `signal` (0 = noise)."""
    rng = np.random.default_rng(seed)
    y = np.arange(n) % len(classes)
    logits = signal * np.eye(len(classes))[y] + rng.normal(0, 1, (n, len(classes)))
    prob = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    names = np.array(classes, dtype=object)
    frame = pd.DataFrame(
        {
            "patient_id": [f"P{i:03d}" for i in range(n)],
            "target": target,
            "fold": (np.arange(n) // 2) % 2,
            "y_true": names[y],
            "y_pred": names[prob.argmax(1)],
        }
    )
    for k, c in enumerate(classes):
        frame[f"prob_{c}"] = prob[:, k]
    folder.mkdir(parents=True)
    frame.to_csv(folder / "predictions.csv", index=False)
    report = metrics_report(frame, list(classes), method=f"method_{folder.name}", target=target, n_boot=200)
    (folder / "metrics.json").write_text(json.dumps(report))
    if extras:
        (folder / "config.yaml").write_text(f"method: method_{folder.name}\ntarget: {target}\nepochs: 3\n")
        frame[["patient_id", "fold"]].assign(role="test").to_csv(folder / "splits.csv", index=False)
        (folder / "cohort.json").write_text(
            json.dumps(
                {
                    "cohort": "/data/synthetic",
                    "n_patients": n + 1,
                    "class_counts": {c: int(np.sum(y == k)) for k, c in enumerate(classes)},
                    "modalities": {"t1c": n, "flair": n - 2},
                    "skipped": [{"patient_id": "P999", "reason": "t1c grid differs from flair"}],
                }
            )
        )
    return folder, report


class Images(HTMLParser):
    def __init__(self):
        super().__init__()
        self.srcs = []

    def handle_starttag(self, tag, attrs):
        if tag == "img":
            self.srcs.append(dict(attrs)["src"])


def png_size(data: bytes) -> tuple[int, int]:
    assert data.startswith(PNG_SIGNATURE) and data[12:16] == b"IHDR"
    return struct.unpack(">II", data[16:24])


def images(html: str) -> list[bytes]:
    parser = Images()
    parser.feed(html)
    prefix = "data:image/png;base64,"
    assert all(s.startswith(prefix) for s in parser.srcs)
    return [base64.b64decode(s[len(prefix) :], validate=True) for s in parser.srcs]


@pytest.fixture
def two_runs(tmp_path):
    a, report_a = make_run(tmp_path / "runs" / "baseline", signal=0.5, seed=1)
    b, report_b = make_run(tmp_path / "runs" / "better", signal=3.0, seed=2, extras=False)
    return [a, b], [report_a, report_b]


def test_two_runs_give_nine_valid_figures(tmp_path, two_runs):
    runs, _ = two_runs
    out = write_report(runs, tmp_path / "out" / "report.html")
    html = out.read_text()
    pngs = images(html)
    assert len(pngs) == 2 * 4 + 1  # ROC, PR, calibration, confusion per run + one AUC forest plot
    for data in pngs:
        width, height = png_size(data)
        assert 200 <= width <= 1500 and 100 <= height <= 1500
        assert len(data) > 5000
    assert not re.search(r"https?://", html)
    assert "<link" not in html and "<script src" not in html
    assert not list(out.parent.glob(".*tmp"))  # the temporary file was renamed away


def test_tables_hold_the_recorded_metrics_and_cohort(tmp_path, two_runs):
    runs, reports = two_runs
    html = write_report(runs, tmp_path / "report.html").read_text()
    for report in reports:
        for name in ["auc", "accuracy", "kappa", "ece"]:
            m = report["metrics"][name]
            assert f"{m['value']:.3f} [{m['ci_low']:.3f}, {m['ci_high']:.3f}]" in html, name  # comparison table
            assert f"<td>{m['value']:.3f}</td><td>{m['ci_low']:.3f}</td><td>{m['ci_high']:.3f}</td>" in html
    assert "/data/synthetic" in html and "P999" in html and "t1c grid differs from flair" in html
    assert "config.yaml: not recorded" in html and "cohort.json): not recorded" in html  # second run has neither
    assert "Paired AUC test against baseline" in html and "not tested" not in html


def test_paired_test_is_skipped_with_reason_for_another_target(tmp_path):
    a, _ = make_run(tmp_path / "idh_run", signal=1.0)
    b, _ = make_run(tmp_path / "grade_run", signal=1.0, classes=("2", "3", "4"), target="grade", n=45)
    html = write_report([a, b], tmp_path / "report.html").read_text()
    assert "not tested: cannot compare runs on different targets" in html
    assert len(images(html)) == 9
    assert "kappa_quadratic" in html


def test_single_run_without_metrics_json_is_recomputed(tmp_path):
    run, report = make_run(tmp_path / "only", signal=2.0, extras=False)
    (run / "metrics.json").unlink()
    html = write_report([run], tmp_path / "r.html").read_text()
    assert len(images(html)) == 4 and "Comparison" not in html
    assert "metrics recomputed from predictions.csv" in html
    assert f"<td>{report['metrics']['auc']['value']:.3f}</td>" in html


def test_missing_run_folder_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere"):
        write_report([tmp_path / "nowhere"], tmp_path / "r.html")
    with pytest.raises(ValueError, match="at least one run"):
        write_report([], tmp_path / "r.html")
