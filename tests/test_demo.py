import json

import pytest

from examples_run import run_example


@pytest.mark.slow
def test_demo_runs_end_to_end_on_a_tiny_budget(tmp_path):
    out = tmp_path / "demo.json"
    run = run_example("wordnet_demo.py", "--quick", "--ablations", "--out", str(out))
    assert "pretraining gain" in run.stdout and str(out) in run.stdout
    payload = json.loads(out.read_text())
    for model in ("pretrained", "co-occurrence embeddings only", "masked LM only", "scratch"):
        metrics = payload["summary"][model]
        assert 0 <= metrics["macro_f1"]["mean"] <= 1 and metrics["accuracy"]["n"] == 1
    assert payload["runs"]["pretrained"][0]["pretrain_seconds"] > 0
    assert (tmp_path / "demo.png").stat().st_size > 10_000  # confusion, per class, curves


@pytest.mark.slow
def test_policy_comparison_runs_end_to_end(tmp_path):
    out = tmp_path / "policies.json"
    # The four policies that train fewest weights: the others share code.
    run = run_example("compare_policies.py", "--quick", "--policies", "FeatureExtraction()",
                      "BitFit()", "LoRA(rank=8)", "Adapters(16)", "--out", str(out))
    summary = json.loads(out.read_text())["summary"]
    assert set(summary) == {"FeatureExtraction()", "BitFit()", "LoRA(rank=8)", "Adapters(16)"}
    assert all(0 <= row["macro_f1_mean"] <= 1 for row in summary.values())
    assert "LoRA(rank=8)" in run.stdout and "Results written to" in run.stdout


@pytest.mark.slow
@pytest.mark.parametrize("study", ["masked", "supervised", "byol"])
def test_fashion_mnist_transfer_study_runs_end_to_end(tmp_path, study):
    out = tmp_path / f"{study}.json"
    probe = ["--probe", "--save-backbone", str(tmp_path / "b.keras")] if study == "byol" else []
    run = run_example("fashion_mnist_transfer.py", "--quick", "--study", study, "--out",
                      str(out), *probe)
    assert "pretraining gain" in run.stdout
    payload = json.loads(out.read_text())
    for model in ("pretrained", "scratch"):
        assert 0 <= payload["summary"][model]["accuracy"]["mean"] <= 1
    assert payload["runs"]["pretrained"][0]["pretrain_seconds"] > 0
    if probe:  # frozen-feature yardsticks of the pretrained and a random backbone
        for backbone in ("pretrained", "random init"):
            for yardstick in ("linear_probe", "knn"):
                assert 0 <= payload["probes"][backbone][yardstick]["accuracy"] <= 1
        assert (tmp_path / "b.keras").exists()


@pytest.mark.slow
def test_label_efficiency_study_writes_table_plot_and_json(tmp_path):
    run = run_example("label_efficiency.py", "--quick", "--out", str(tmp_path))
    summary = json.loads((tmp_path / "label_efficiency.json").read_text())["summary"]
    assert set(summary) >= {"pretrained", "scratch"}
    assert sorted(summary["pretrained"], key=int) == ["12", "24"]
    assert "Written to" in run.stdout
    assert (tmp_path / "label_efficiency.png").stat().st_size > 5000
    assert "| labels | pretrained | scratch" in (tmp_path / "label_efficiency.md").read_text()


@pytest.mark.slow
def test_definition_writing_example_runs_end_to_end(tmp_path):
    out = tmp_path / "definitions.json"
    run = run_example("wordnet_definitions.py", "--quick", "--lora", "4", "--out", str(out))
    assert "sentence BLEU" in run.stdout and str(out) in run.stdout
    payload = json.loads(out.read_text())
    for arm in ("pretrained", "scratch", "pretrained + LoRA"):
        metrics = payload["summary"][arm]
        assert 0 <= metrics["bleu"]["mean"] <= 100 and 0 <= metrics["rouge_l"]["mean"] <= 1
        assert metrics["perplexity"]["mean"] >= 1
        run = payload["runs"][arm][0]
        low, high = run["bleu"]["interval"]
        assert low <= run["bleu"]["value"] <= high
        assert run["decoding"] == max(run["validation_rouge_l_by_decoding"],
                                      key=run["validation_rouge_l_by_decoding"].get)
    assert "nearest term (all training nouns)" in payload["summary"]
    assert len(payload["examples"]) == 2 and payload["examples"][0]["pretrained"] is not None


@pytest.mark.slow
def test_demo_runs_on_the_fortune_corpus(tmp_path):
    out = tmp_path / "fortunes.json"
    run = run_example("wordnet_demo.py", "--quick", "--corpus", "fortunes", "--out", str(out))
    assert "Fortune-cookie topics" in run.stdout and "KerasHub recipe" not in run.stdout
    summary = json.loads(out.read_text())["summary"]
    assert 0 <= summary["pretrained"]["macro_f1"]["mean"] <= 1
