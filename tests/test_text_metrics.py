"""BLEU and ROUGE-L of generated texts equal the reference implementations (SacreBLEU,
Google's rouge_score) on a fixed corpus; bootstrap intervals; bad input."""

import numpy as np
import pytest

import pretrainlib as pl
from pretrainlib.evaluation.text_metrics import tokenize_13a

sacrebleu = pytest.importorskip("sacrebleu")
rouge_scorer = pytest.importorskip("rouge_score.rouge_scorer")

PREDICTIONS = [
    "a small dog that barks at the cat.",
    "The act of running quickly, as a deer runs.",
    "a tool for cutting wood",
    "someone who teaches children in a school",
    "to move through water by moving the arms and legs",
    "a large body of salt water",
    "the state of being happy",
    "feline",
    "an instrument used for measuring temperature (in degrees), e.g. 3.5-7",
    "a person who writes books &amp; poems",
]
REFERENCES = [
    "a small dog that barks loudly at strangers.",
    "The act of running fast, as an animal does.",
    "a hand tool for cutting wood, with a toothed blade",
    "a person whose job is teaching children at a school",
    "to travel through water by moving the arms and legs",
    "a very large body of salt water, an ocean",
    "the state of feeling happiness",
    "a cat or another member of the cat family",
    "an instrument for measuring temperature in degrees",
    "a person who writes books or poems",
]
SECOND = [r.replace("a ", "one ", 1) for r in REFERENCES]  # a second reference each


def evaluate(metrics, references=REFERENCES, **kwargs):
    return pl.Evaluator(metrics=metrics).evaluate_texts(references, PREDICTIONS, **kwargs)


def test_the_13a_tokens_equal_sacrebleus():
    from sacrebleu.tokenizers.tokenizer_13a import Tokenizer13a

    tokenizer = Tokenizer13a()
    for text in PREDICTIONS + REFERENCES:
        assert tokenize_13a(text) == tokenizer(text).split()


@pytest.mark.parametrize("smooth", ["exp", "floor", "add-k", "none"])
def test_corpus_bleu_equals_sacrebleu(smooth):
    ours = evaluate(["bleu"], smooth=smooth).metrics["bleu"]
    theirs = sacrebleu.corpus_bleu(PREDICTIONS, [REFERENCES], smooth_method=smooth).score
    assert ours == pytest.approx(theirs, abs=1e-6)


def test_corpus_bleu_with_several_references_and_lowercase_equals_sacrebleu():
    references = [[a, b] for a, b in zip(REFERENCES, SECOND)]
    ours = evaluate(["bleu"], references=references, lowercase=True).metrics["bleu"]
    theirs = sacrebleu.corpus_bleu(PREDICTIONS, [REFERENCES, SECOND], lowercase=True).score
    assert ours == pytest.approx(theirs, abs=1e-6)


@pytest.mark.parametrize("smooth", ["exp", "floor", "add-k"])
def test_sentence_bleu_is_the_mean_of_sacrebleus_sentence_bleu(smooth):
    ours = evaluate(["sentence_bleu"], smooth=smooth).metrics["sentence_bleu"]
    theirs = np.mean([sacrebleu.sentence_bleu(p, [r], smooth_method=smooth).score
                      for p, r in zip(PREDICTIONS, REFERENCES)])
    assert ours == pytest.approx(theirs, abs=1e-6)


def test_rouge_l_equals_rouge_score_best_reference_mean():
    scorer = rouge_scorer.RougeScorer(["rougeL"])
    references = [[a, b] for a, b in zip(REFERENCES, SECOND)]
    ours = evaluate(["rouge_l"], references=references).metrics["rouge_l"]
    theirs = np.mean([scorer.score_multi(refs, p)["rougeL"].fmeasure
                      for refs, p in zip(references, PREDICTIONS)])
    assert ours == pytest.approx(theirs, abs=1e-9)


def test_identical_texts_score_perfectly_and_unrelated_ones_near_zero():
    report = pl.Evaluator(metrics=["bleu", "rouge_l"]).evaluate_texts(REFERENCES, REFERENCES)
    assert report.metrics["bleu"] == pytest.approx(100.0)
    assert report.metrics["rouge_l"] == pytest.approx(1.0)
    unrelated = pl.Evaluator(metrics=["bleu", "rouge_l"]).evaluate_texts(
        REFERENCES, ["zzz qqq"] * len(REFERENCES), smooth="none")
    assert unrelated.metrics["bleu"] == 0.0 and unrelated.metrics["rouge_l"] == 0.0


def test_bootstrap_intervals_bracket_the_values_and_replay_with_the_seed():
    evaluator = pl.Evaluator(metrics=["bleu", "rouge_l"], bootstrap=200, seed=3)
    report, again = (evaluator.evaluate_texts(REFERENCES, PREDICTIONS) for _ in range(2))
    for name in ("bleu", "rouge_l"):
        low, high = report.intervals[name]
        assert low <= report.metrics[name] <= high and low < high
    assert report.intervals == again.intervals
    assert report.task == "generation" and report.num_examples == len(PREDICTIONS)


@pytest.mark.parametrize("call, error, fragment", [
    (lambda e: e.evaluate_texts(REFERENCES[:3], PREDICTIONS), ValueError,
     "`references` has 3 entries for 10"),
    (lambda e: e.evaluate_texts([], []), ValueError, "`predictions` is empty"),
    (lambda e: e.evaluate_texts(REFERENCES, "one text"), TypeError, "`predictions`"),
    (lambda e: e.evaluate_texts([[]] * 10, PREDICTIONS), TypeError, "non-empty list"),
    (lambda e: e.evaluate_texts(REFERENCES, PREDICTIONS, smooth="laplace"), ValueError,
     "smooth"),
    (lambda e: e.evaluate(None, None), ValueError, "evaluate_texts"),
])
def test_bad_inputs_name_the_argument(call, error, fragment):
    with pytest.raises(error, match=fragment):
        call(pl.Evaluator(metrics=["bleu"]))


def test_texts_need_generation_metrics_and_tasks_do_not_mix():
    with pytest.raises(ValueError, match="evaluate_texts` scores generated texts"):
        pl.Evaluator(metrics=["accuracy"]).evaluate_texts(REFERENCES, PREDICTIONS)
    with pytest.raises(ValueError, match="mixes tasks"):
        pl.Evaluator(metrics=["bleu", "accuracy"])
    # Perplexity goes with BLEU (the references' perplexity), from the model only.
    with pytest.raises(ValueError, match="need the model that wrote the texts"):
        pl.Evaluator(metrics=["bleu", "perplexity"]).evaluate_texts(REFERENCES, PREDICTIONS)
