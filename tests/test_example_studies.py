"""The compression, learning-rate finder and semi-supervised studies run end to end
on tiny budgets (each in its own process, as a user runs it), apart from the demo's
tests so that test workers can run them side by side."""

import json

import pytest

from examples_run import run_example


@pytest.mark.slow
def test_compression_study_runs_end_to_end(tmp_path):
    out = tmp_path / "compression.json"
    run = run_example("compression_study.py", "--quick", "--out", str(out))
    summary = json.loads(out.read_text())["summary"]
    assert list(summary) == ["float32", "int8", "int4", "pruned 50%", "pruned 80%",
                             "distilled student"]
    for arm in summary.values():
        assert 0 <= arm["macro_f1"]["mean"] <= 1 and arm["latency_ms_32"]["mean"] > 0
    assert summary["int8"]["size_bytes"]["mean"] < summary["float32"]["size_bytes"]["mean"] / 2
    assert summary["pruned 80%"]["gzip_bytes"]["mean"] < summary["float32"]["gzip_bytes"]["mean"]
    assert "| int8 |" in run.stdout and (tmp_path / "compression.png").is_file()


@pytest.mark.slow
def test_compression_study_of_the_image_model_runs_end_to_end(tmp_path):
    out = tmp_path / "images.json"
    run = run_example("compression_study.py", "--task", "images", "--quick", "--out",
                      str(out))
    result = json.loads(out.read_text())
    summary = result["summary"]
    assert list(summary) == ["float32", "int8", "int4", "pruned 50%", "pruned 80%",
                             "distilled student"]
    assert result["config"]["task"] == "images"
    # Keras leaves convolutions in float: the report names them.
    assert "kept in float" in run.stdout and "(Conv2D," in run.stdout
    assert summary["distilled student"]["parameters"] < summary["float32"]["parameters"] / 2
    assert summary["pruned 80%"]["gzip_bytes"]["mean"] < summary["float32"]["gzip_bytes"]["mean"]
    assert (tmp_path / "images.png").is_file()


@pytest.mark.slow
def test_learning_rate_finder_study_runs_end_to_end(tmp_path):
    out = tmp_path / "lr.json"
    run = run_example("lr_finder_study.py", "--quick", "--plot", "--out", str(out))
    result = json.loads(out.read_text())
    assert [s["stage"] for s in result["seeds"]] == [0, 1]  # FreezeThenUnfreeze's two
    for seed in result["seeds"]:
        assert len(seed["grid"]) == 2 and 1e-7 <= seed["suggestion"] <= 10
        assert 1 <= seed["nearest_rank_by_val"] <= 2
    assert result["summary"]["stage 0"]["seeds"] == 1
    assert (tmp_path / "lr_stage0.png").is_file() and (tmp_path / "lr_stage1.png").is_file()
    assert "| seed | stage tested | suggestion |" in run.stdout


@pytest.mark.slow
@pytest.mark.parametrize("task", ["text", "images"])
def test_semi_supervised_study_runs_end_to_end(tmp_path, task):
    out = tmp_path / "semi.json"
    # The text run skips the pseudo-label and self-training arms (their steps are the
    # consistency arm's and the teacher's, tested in tests/test_semi.py): minutes of CI.
    arms = {"text": ["recipe", "+ consistency", "zero-shot prompt",
                     "zero-shot prompt, calibrated", "+ prompt"],
            "images": ["recipe", "+ consistency", "pretrained, frozen",
                       "pretrained + consistency"]}[task]
    chosen = ["--arms", *arms] if task == "text" else []
    if task == "images":  # a pretrained backbone (random here) adds its arms
        import pretrainlib as pl

        pl.backbones.ConvNet(widths=(8, 16)).save(tmp_path / "backbone.keras")
        chosen = ["--backbone", str(tmp_path / "backbone.keras"),
                  "--pretrained-learning-rates", "3e-3", "--frozen-learning-rates", "1e-2"]
    run = run_example("semi_supervised_study.py", "--task", task, "--quick", "--out",
                      str(out), *chosen)
    result = json.loads(out.read_text())
    assert list(result["summary"]["60"]) == arms
    semi = result["runs"]["60"][0][arms[-1]]
    assert 0 <= semi["macro_f1"] <= 1 and semi["epochs"] >= 1
    assert ("scratch" in result["summary"]) == (task == "text")
    assert "| 60 | + consistency |" in run.stdout
    if task == "text":  # each seed's template picked on its labels, every score kept
        templates = result["runs"]["60"][0]["prompt templates"]
        assert templates["picked"] in templates["train_macro_f1"]
        calibrated = result["runs"]["60"][0]["calibrated prompt templates"]
        assert calibrated["picked"] in calibrated["train_macro_f1"]
