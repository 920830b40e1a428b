"""The one statistics convention: sample std over seeds, paired Student-t intervals."""

import numpy as np
import pytest

import pretrainlib as pl
from pretrainlib.evaluation.statistics import t_quantile

# Two-sided 95 % critical values of Student's t (any statistics table).
T_975 = {1: 12.7062, 2: 4.3027, 3: 3.1824, 4: 2.7764, 9: 2.2622, 29: 2.0452, 120: 1.9799}


@pytest.mark.parametrize("df, expected", sorted(T_975.items()))
def test_t_quantile_matches_the_table(df, expected):
    assert t_quantile(0.975, df) == pytest.approx(expected, abs=1e-4)
    assert t_quantile(0.025, df) == pytest.approx(-expected, abs=1e-4)


def test_spread_is_the_sample_standard_deviation():
    values = [0.61, 0.64, 0.70, 0.66]
    s = pl.evaluation.spread(values)
    assert s.std == pytest.approx(np.std(values, ddof=1)) and s.n == 4
    assert pl.evaluation.spread([0.5]).format() == "0.500"  # one seed: no spread shown


def test_paired_difference_counts_seed_variance():
    a, b = [0.70, 0.66, 0.68], [0.36, 0.33, 0.37]
    d = pl.evaluation.paired_difference(a, b)
    diffs = np.subtract(a, b)
    half = T_975[2] * diffs.std(ddof=1) / np.sqrt(3)
    assert d.mean == pytest.approx(diffs.mean())
    assert (d.low, d.high) == pytest.approx((diffs.mean() - half, diffs.mean() + half), abs=1e-4)
    assert d.verdict("pre", "scratch") == "pre beats scratch"
    assert pl.evaluation.paired_difference(b, a).verdict("scratch", "pre") == "pre beats scratch"
    level = pl.evaluation.paired_difference([0.70, 0.60, 0.66], [0.65, 0.66, 0.64])
    assert level.verdict("a", "b") == "a and b are level"
    one = pl.evaluation.paired_difference([0.7], [0.6])
    assert not one.has_interval and one.verdict("a", "b").startswith("one seed")


@pytest.mark.parametrize("call, message", [
    (lambda: pl.evaluation.paired_difference([0.1, 0.2], [0.1]), "one score per seed"),
    (lambda: pl.evaluation.paired_difference([], []), "one score per seed"),
    (lambda: pl.evaluation.paired_difference([0.1], [0.2], confidence=95), "`confidence`"),
    (lambda: pl.evaluation.spread([]), "`values` is empty"),
    (lambda: t_quantile(0.975, 0), "`df`"),
])
def test_bad_input_is_refused_with_the_argument_named(call, message):
    with pytest.raises(ValueError, match=message):
        call()


def test_study_report_difference_pairs_by_seed():
    runs = [{"arm": arm, "budget": 50, "seed": seed, "f1": f}
            for arm, scores in {"pre": [0.70, 0.66, 0.68], "scratch": [0.36, 0.33, 0.37]}.items()
            for seed, f in reversed(list(enumerate(scores)))]  # out of seed order on purpose
    study = pl.evaluation.StudyReport(runs, ["f1"])
    assert study.difference("pre", "scratch", 50).differences == pytest.approx((0.34, 0.33, 0.31))
    assert study.summary()["pre"][50]["f1"]["std"] == pytest.approx(0.02)
    with pytest.raises(ValueError, match="no runs of arm 'x'"):
        study.difference("x", "scratch", 50)
