"""The console script, run in-process: exit codes and the one-line errors of Contract 2."""

import json

from typer.testing import CliRunner

from gliotype.cli import app

runner = CliRunner()


def test_validate_prints_the_table_and_exits_0(tiny_mri_cohort):
    result = runner.invoke(app, ["validate", str(tiny_mri_cohort)])
    assert result.exit_code == 0, result.output
    assert "P000" in result.output and "16 of 16 patients usable; 0 problems" in result.output


def test_validate_of_a_missing_folder_is_one_error_line(tmp_path):
    result = runner.invoke(app, ["validate", str(tmp_path / "nope")])
    assert result.exit_code == 1
    assert "error:" in result.output and "not a cohort folder" in result.output


def test_usage_error_exits_2():
    assert runner.invoke(app, ["train"]).exit_code == 2


def test_methods_lists_the_registry():
    result = runner.invoke(app, ["methods"])
    assert result.exit_code == 0 and "densenet3d" in result.output and "rnaseq-lr" in result.output


def test_train_unknown_method_lists_known_ones(tiny_mri_cohort, tmp_path):
    result = runner.invoke(app, ["train", str(tiny_mri_cohort), "--method", "densenet", "--target", "idh",
                                 "--out", str(tmp_path / "r")])
    assert result.exit_code == 1 and "did you mean 'densenet3d'" in result.output


def test_train_evaluate_predict_report(tiny_mri_cohort, tmp_path):
    run = tmp_path / "run"
    result = runner.invoke(app, ["train", str(tiny_mri_cohort), "--method", "rnaseq-lr", "--target", "idh",
                                 "--folds", "4", "--out", str(run), "--set", "C=1"])
    assert result.exit_code == 0, result.output
    assert json.loads((run / "metrics.json").read_text())["metrics"]["auc"]["value"] >= 0.95
    assert "C: 1" in (run / "config.yaml").read_text()
    assert runner.invoke(app, ["evaluate", str(run), str(tiny_mri_cohort), "--out", str(tmp_path / "ext")]).exit_code == 0
    assert runner.invoke(app, ["predict", str(run), str(tiny_mri_cohort), "--out", str(tmp_path / "p.csv")]).exit_code == 0
    assert len((tmp_path / "p.csv").read_text().splitlines()) == 17
    result = runner.invoke(app, ["report", str(run), str(tmp_path / "ext"), "--out", str(tmp_path / "r.html")])
    assert result.exit_code == 0 and (tmp_path / "r.html").stat().st_size > 10_000


def test_prepare_reports_counts(tiny_mri_cohort, tmp_path):
    result = runner.invoke(app, ["prepare", str(tiny_mri_cohort), "--cache", str(tmp_path / "cache"), "--stages", "tumour_image"])
    assert result.exit_code == 0 and "tumour_image: 16 patients ready (16 built, 0 cached), 0 failed" in result.output


def test_synth_then_validate_shows_every_modality(tmp_path):
    result = runner.invoke(app, ["synth", str(tmp_path / "c"), "--patients", "2", "--seed", "1", "--signal", "perfusion=0"])
    assert result.exit_code == 0, result.output
    result = runner.invoke(app, ["validate", str(tmp_path / "c")])
    assert result.exit_code == 0 and "2 of 2 patients usable; 0 problems" in result.output
    row = next(line for line in result.output.splitlines() if "SYN-0001" in line)
    assert row.count("✓") == 9  # t1n t1c t2w t2f seg dsc fa histology rnaseq


def test_synth_bad_signal_names_the_keys(tmp_path):
    result = runner.invoke(app, ["synth", str(tmp_path / "c"), "--patients", "2", "--signal", "perfussion=1"])
    assert result.exit_code == 1 and "perfussion" in result.output and "perfusion" in result.output


def test_training_commands_route_lightnings_lines_through_one_handler(tiny_mri_cohort, tmp_path):
    import logging

    result = runner.invoke(app, ["train", str(tiny_mri_cohort), "--method", "rnaseq-lr", "--target", "idh",
                                 "--folds", "2", "--out", str(tmp_path / "run")])
    assert result.exit_code == 0, result.output
    for name in ("lightning", "lightning.pytorch", "lightning.fabric"):
        logger = logging.getLogger(name)  # Lightning's own console handler would print each line a second time
        assert logger.handlers == [] and logger.propagate and logger.level == logging.WARNING, name
