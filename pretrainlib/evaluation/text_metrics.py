"""Metrics of generated text against references: BLEU (corpus and sentence) and
ROUGE-L, from per-example records, so they are exact and bootstrap by resampling.

BLEU follows SacreBLEU (Post, 2018), the standard way to report it: the `13a`
tokenizer, n-grams up to 4 clipped by the most generous reference, the brevity
penalty against the closest reference length, its four smoothing methods, scores
on 0-100. ROUGE-L follows Google's `rouge_score`: lower-cased alphanumeric tokens,
the F-measure of the longest common subsequence, the best reference per example,
averaged over examples (0-1). Both are written here (a few dozen lines) so that
pretrainlib needs neither package; the tests check them against both.
"""

from __future__ import annotations

import collections
import math
import re

import numpy as np

MAX_ORDER = 4
SMOOTHING = ("exp", "floor", "add-k", "none")
_13A = [(re.compile(r"([\{-\~\[-\` -\&\(-\+\:-\@\/])"), r" \1 "),
        (re.compile(r"([^0-9])([\.,])"), r"\1 \2 "),
        (re.compile(r"([\.,])([^0-9])"), r" \1 \2"),
        (re.compile(r"([0-9])(-)"), r"\1 \2 ")]


def tokenize_13a(line: str) -> list[str]:
    """SacreBLEU's default (`13a`, mteval-v13a) tokenization of one line.

    Examples:
        >>> from pretrainlib.evaluation.text_metrics import tokenize_13a
        >>> tokenize_13a("A dog (small), 3.5 times louder.")
        ['A', 'dog', '(', 'small', ')', ',', '3.5', 'times', 'louder', '.']
    """
    line = line.replace("<skipped>", "").replace("-\n", "").replace("\n", " ")
    if "&" in line:
        line = (line.replace("&quot;", '"').replace("&amp;", "&").replace("&lt;", "<")
                .replace("&gt;", ">"))
    line = f" {line} "
    for pattern, replacement in _13A:
        line = pattern.sub(replacement, line)
    return line.split()


def _ngrams(tokens: list[str], order: int) -> collections.Counter:
    return collections.Counter(tuple(tokens[i:i + order])
                               for i in range(len(tokens) - order + 1))


def bleu_records(predictions: list[str], references: list[list[str]],
                 lowercase: bool = False) -> dict[str, np.ndarray]:
    """Per example: clipped n-gram matches and n-gram counts for orders 1-4, the
    prediction's length and its closest reference length (ties: the shorter)."""
    matches = np.zeros((len(predictions), MAX_ORDER))
    totals = np.zeros((len(predictions), MAX_ORDER))
    lengths, reference_lengths = np.zeros(len(predictions)), np.zeros(len(predictions))
    for i, (prediction, refs) in enumerate(zip(predictions, references)):
        if lowercase:
            prediction, refs = prediction.lower(), [r.lower() for r in refs]
        hypothesis = tokenize_13a(prediction)
        tokenized = [tokenize_13a(r) for r in refs]
        lengths[i] = len(hypothesis)
        reference_lengths[i] = min((abs(len(r) - len(hypothesis)), len(r))
                                   for r in tokenized)[1]
        for n in range(1, MAX_ORDER + 1):
            counts = _ngrams(hypothesis, n)
            most = collections.Counter()
            for r in tokenized:
                most |= _ngrams(r, n)  # the most any reference allows, per n-gram
            matches[i, n - 1] = sum(min(c, most[g]) for g, c in counts.items())
            totals[i, n - 1] = max(0, len(hypothesis) - n + 1)
    return {"bleu_matches": matches, "bleu_totals": totals, "length": lengths,
            "reference_length": reference_lengths}


def bleu(matches, totals, length: float, reference_length: float, smooth: str = "exp",
         smooth_value: float | None = None, effective_order: bool = False) -> float:
    """BLEU (0-100) from summed counts, exactly as SacreBLEU computes it.

    Examples:
        >>> from pretrainlib.evaluation.text_metrics import bleu
        >>> round(bleu([4, 3, 2, 1], [4, 3, 2, 1], 4, 4), 6)  # every n-gram matches
        100.0
    """
    matches, totals = list(map(float, matches)), list(map(float, totals))
    if smooth_value is None:
        smooth_value = {"floor": 0.1, "add-k": 1.0}.get(smooth, 0.0)
    if length < reference_length:
        penalty = math.exp(1 - reference_length / length) if length > 0 else 0.0
    else:
        penalty = 1.0
    if not any(matches):  # no n-gram of any order matches: 0 whatever the smoothing
        return 0.0
    precisions, order, doubling = [0.0] * MAX_ORDER, MAX_ORDER, 1.0
    for n in range(1, MAX_ORDER + 1):
        if smooth == "add-k" and n > 1:
            matches[n - 1] += smooth_value
            totals[n - 1] += smooth_value
        if totals[n - 1] == 0:
            break
        if effective_order:
            order = n
        if matches[n - 1] == 0:
            if smooth == "exp":
                doubling *= 2
                precisions[n - 1] = 100.0 / (doubling * totals[n - 1])
            elif smooth == "floor":
                precisions[n - 1] = 100.0 * smooth_value / totals[n - 1]
        else:
            precisions[n - 1] = 100.0 * matches[n - 1] / totals[n - 1]
    logs = [math.log(p) if p > 0 else -9999999999 for p in precisions[:order]]
    return penalty * math.exp(sum(logs) / order)


def rouge_tokens(text: str) -> list[str]:
    """`rouge_score`'s tokenization: lower case, runs of [a-z0-9] only."""
    return re.sub(r"[^a-z0-9]+", " ", text.lower()).split()


def _lcs(a: list[str], b: list[str]) -> int:
    previous = [0] * (len(b) + 1)
    for x in a:
        current = [0]
        for j, y in enumerate(b):
            current.append(previous[j] + 1 if x == y else max(previous[j + 1], current[j]))
        previous = current
    return previous[-1]


def rouge_l_records(predictions: list[str], references: list[list[str]]) -> dict:
    """Per example: the ROUGE-L F-measure against its best reference."""
    scores = np.zeros(len(predictions))
    for i, (prediction, refs) in enumerate(zip(predictions, references)):
        hypothesis = rouge_tokens(prediction)
        best = 0.0
        for reference in refs:
            target = rouge_tokens(reference)
            common = _lcs(target, hypothesis)
            if not common:
                continue
            precision, recall = common / len(hypothesis), common / len(target)
            best = max(best, 2 * precision * recall / (precision + recall))
        scores[i] = best
    return {"rouge_l": scores}


NAMES = ("bleu", "sentence_bleu", "rouge_l")


def functions(names, smooth: str = "exp", smooth_value: float | None = None) -> dict:
    """`{name: records -> value}` for the generation metric `names`."""
    def corpus(r):
        return bleu(r["bleu_matches"].sum(0), r["bleu_totals"].sum(0), r["length"].sum(),
                    r["reference_length"].sum(), smooth, smooth_value)

    def sentences(r):
        return float(np.mean([
            bleu(m, t, n, rn, smooth, smooth_value, effective_order=True)
            for m, t, n, rn in zip(r["bleu_matches"], r["bleu_totals"], r["length"],
                                   r["reference_length"])]))

    table = {"bleu": corpus, "sentence_bleu": sentences,
             "rouge_l": lambda r: float(np.mean(r["rouge_l"]))}
    return {name: table[name] for name in names}
