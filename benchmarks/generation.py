"""Generation speed: pl.generation.Generator (key/value cache, and without it) against
KerasHub's own `CausalLM.generate`, on the same model, batch and greedy sampler.

The model is a randomly initialized KerasHub `GPT2Backbone` (4 layers, hidden 256,
4 heads; the weights do not change the speed), so both libraries run the very same
network: KerasHub through `GPT2CausalLM.generate` (its compiled loop, XLA as KerasHub
compiles it by default), pretrainlib through `Generator` (its cached loop, and its
uncached loop that reruns the whole model at every step; and the cached loop
compiled with XLA, `Generator(..., jit_compile=True)`). Every arm generates exactly
`--new-tokens` tokens per row after prompts of `--prompt-tokens`: without stop tokens,
and with one (checked at every step, never written).
Arms alternate; ratios are the median over rounds of each round's ratio.

    python benchmarks/generation.py --out docs/results/benchmark_generation.json
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import keras_hub  # noqa: E402
import numpy as np  # noqa: E402

import pretrainlib as pl  # noqa: E402
import results  # noqa: E402  (benchmarks/results.py, beside this script)


class IdTokenizer:
    """Token ids in, token ids out: the benchmark times decoding, not tokenizing."""

    start_token_id = end_token_id = pad_token_id = None

    def __call__(self, texts):
        return [[int(t) for t in text.decode().split()] for text in texts.numpy()]

    def detokenize(self, ids):
        return " ".join(str(int(i)) for i in ids)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--prompt-tokens", type=int, default=8)
    p.add_argument("--new-tokens", type=int, default=64)
    p.add_argument("--layers", type=int, default=4)
    p.add_argument("--hidden", type=int, default=256)
    p.add_argument("--vocab", type=int, default=8000)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--out", default="runs/benchmark_generation.json")
    args = p.parse_args(argv)
    keras.utils.set_random_seed(0)
    length = args.prompt_tokens + args.new_tokens
    backbone = keras_hub.models.GPT2Backbone(
        vocabulary_size=args.vocab, num_layers=args.layers, num_heads=4,
        hidden_dim=args.hidden, intermediate_dim=4 * args.hidden, max_sequence_length=length)
    rng = np.random.default_rng(0)
    prompts = rng.integers(1, args.vocab, (args.batch, args.prompt_tokens))
    # KerasHub: the prompts right-padded to the full length, generated in place.
    task = keras_hub.models.GPT2CausalLM(backbone=backbone, preprocessor=None)
    token_ids = np.zeros((args.batch, length), "int32")
    token_ids[:, :args.prompt_tokens] = prompts
    padding_mask = token_ids > 0
    generators = {False: pl.generation.Generator(backbone, IdTokenizer()),
                  True: pl.generation.Generator(backbone, IdTokenizer(), jit_compile=True)}
    texts = [" ".join(map(str, row)) for row in prompts]

    def keras_hub_arm(stops=None):
        def arm():
            out = task.generate({"token_ids": token_ids, "padding_mask": padding_mask},
                                stop_token_ids=stops)
            return int((np.asarray(out["padding_mask"]).sum(1) - args.prompt_tokens).min())
        return arm

    def ours(use_cache, xla=False, stops=()):
        def arm():
            new, _ = generators[xla].generate_ids(texts, max_new_tokens=args.new_tokens,
                                                  stop_token_ids=list(stops),
                                                  use_cache=use_cache)
            return min(len(row) for row in new)
        return arm

    # The stop-token arms check for a stop token at every step (a token this model never
    # writes here, so every row still runs to full length).
    written, _ = generators[False].generate_ids(texts, max_new_tokens=args.new_tokens,
                                                stop_token_ids=[])
    stop = [min(set(range(1, args.vocab)) - {t for row in written for t in row})]
    arms = {"keras_hub CausalLM.generate": keras_hub_arm(), "pretrainlib cached": ours(True),
            "keras_hub, stop token": keras_hub_arm(stop),
            "pretrainlib cached, stop token": ours(True, stops=stop),
            "pretrainlib cached, XLA": ours(True, xla=True),
            "pretrainlib uncached": ours(False)}
    for arm in arms.values():
        assert arm() == args.new_tokens  # traced and compiled; every row full length
    runs = {name: [] for name in arms}
    for _ in range(args.repeats):
        for name, arm in arms.items():
            start = time.perf_counter()
            arm()
            runs[name].append(args.batch * args.new_tokens / (time.perf_counter() - start))
            print(f"{name}: {runs[name][-1]:.0f} tokens/s", flush=True)
    rates = {name: statistics.median(r) for name, r in runs.items()}

    def paired(ours, theirs):  # the median of each round's ratio (the machine's rate drifts)
        return statistics.median(a / b for a, b in zip(runs[ours], runs[theirs]))

    result = {
        "config": vars(args), "tokens_per_second": rates, "runs": runs,
        "ratio_cached_vs_keras_hub": paired("pretrainlib cached", "keras_hub CausalLM.generate"),
        "ratio_cached_vs_keras_hub_stop_token": paired("pretrainlib cached, stop token",
                                                       "keras_hub, stop token"),
        "ratio_cached_xla_vs_keras_hub": paired("pretrainlib cached, XLA",
                                                "keras_hub CausalLM.generate"),
        "ratio_cached_vs_uncached": paired("pretrainlib cached", "pretrainlib uncached"),
        "machine": platform.platform(), "date": time.strftime("%Y-%m-%d"),
    }
    print(f"cached / KerasHub: {result['ratio_cached_vs_keras_hub']:.2f}x (with a stop token "
          f"{result['ratio_cached_vs_keras_hub_stop_token']:.2f}x), with XLA "
          f"{result['ratio_cached_xla_vs_keras_hub']:.2f}x, "
          f"cached / uncached: {result['ratio_cached_vs_uncached']:.2f}x")
    results.write(result, args.out)


if __name__ == "__main__":
    main()
