"""Checkpoints change nothing a run learns: the same seeded run ends with the same
weights without a checkpoint, with one every few steps, and killed with SIGKILL
twice and resumed, on one device and under MirroredStrategy. Also: atomic writes,
rotation, the NaN guard."""

import subprocess
import sys

import keras
import numpy as np
import pytest

import pretrainlib as pl

SCRIPT = __import__("pathlib").Path(__file__).parent / "scripts" / "resumable_run.py"
MODELS = ["images", "text", "pretrainer", "files", "semi", "byol"]  # FineTuners (dropout,
# shuffled, a stage boundary at epoch 1, augmentation for images), a masked-LM Pretrainer
# on packed texts, one on packed files streamed from disk, the images one with an
# unlabeled pool, and a BYOL Pretrainer (its moving-average target is in the checkpoint)
MIRRORED = [m for m in MODELS if m != "byol"]  # BYOL's mirrored run: the protocol harness
KILLS = {"images": (5, 14), "text": (3, 10), "pretrainer": (4, 11), "files": (4, 11),
         "semi": (5, 14), "byol": (5, 14)}  # mid-epoch, both
# sides of the unfreezing, between checkpoints (every 4 steps)


def train(out, *flags, model="images", tokenizer=None):
    """Runs the training script in a fresh process; returns its exit code (-9 when
    killed)."""
    command = [sys.executable, str(SCRIPT), str(out), "--model", model, *map(str, flags)]
    if tokenizer is not None:
        command += ["--tokenizer", str(tokenizer)]
    run = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert run.returncode in (0, -9), run.stderr[-3000:]
    return run.returncode


def difference(a, b):
    a, b = np.load(a), np.load(b)
    names = [k for k in a.files if k.startswith("arr_")]
    assert names and names == [k for k in b.files if k.startswith("arr_")]
    return max(float(np.abs(a[k] - b[k]).max()) for k in names)


def moved(path):
    """How far the run moved its weights from where they started."""
    saved = np.load(path)
    return max(float(np.abs(saved[f"arr_{i}"] - saved[f"init_{i}"]).max())
               for i in range(len([k for k in saved.files if k.startswith("init_")])))


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory):
    # One vocabulary for every process (training breaks ties by process).
    path = tmp_path_factory.mktemp("tokenizer") / "tokenizer.json"
    texts = pl.datasets.wordnet_supersenses().train.texts[:2000]
    pl.text.WordPieceTokenizer.train(texts, vocab_size=300).save(str(path))
    return path


def killed_twice_and_resumed(tmp_path, model, tokenizer, *flags):
    folder, out = tmp_path / f"ck-{model}", tmp_path / f"resumed-{model}.npz"
    for step in KILLS[model]:
        assert train(out, "--checkpoint", folder, "--die-at", step, *flags, model=model,
                     tokenizer=tokenizer) == -9
    assert train(out, "--checkpoint", folder, *flags, model=model, tokenizer=tokenizer) == 0
    return out


@pytest.mark.slow
@pytest.mark.parametrize("model", MODELS)
def test_checkpoints_and_kills_change_nothing_a_run_learns(model, tokenizer, tmp_path):
    reference = tmp_path / "reference.npz"  # no Checkpoint callback at all
    assert train(reference, model=model, tokenizer=tokenizer) == 0
    # Checkpointed every 4 steps and killed twice: the writes and the resumes together
    # change nothing (a run checkpointed without kills is the same run's uninterrupted
    # stretches, so it needs no process of its own).
    resumed = killed_twice_and_resumed(tmp_path, model, tokenizer)
    assert difference(reference, resumed) <= 1e-6
    # The resumed call's history covers the epochs it ran, ending with the last one.
    assert np.load(resumed)["epochs"][-1] == 2
    assert moved(reference) > 1e-3  # it trained: equal weights are not untouched ones


@pytest.mark.slow
@pytest.mark.parametrize("model", MIRRORED)
def test_under_mirrored_strategy_kills_change_nothing_either(model, tokenizer, tmp_path):
    reference = tmp_path / "reference.npz"
    assert train(reference, "--mirrored", model=model, tokenizer=tokenizer) == 0
    resumed = killed_twice_and_resumed(tmp_path, model, tokenizer, "--mirrored")
    assert difference(reference, resumed) <= 1e-5


@pytest.mark.slow
def test_a_kill_during_a_checkpoint_write_leaves_the_previous_one_whole(tmp_path):
    folder, out = tmp_path / "ck", tmp_path / "final.npz"
    assert train(out, "--checkpoint", folder, "--die-in-save") == -9
    assert sorted(p.name for p in folder.iterdir()) == [".partial-step-000006",
                                                        "step-000004"]
    assert pl.training.Checkpoint(folder).latest().name == "step-000004"
    assert train(out, "--checkpoint", folder) == 0  # resumes from step 4
    assert train(tmp_path / "reference.npz") == 0
    assert difference(tmp_path / "reference.npz", out) <= 1e-6
    assert not list(folder.glob(".partial-*"))


# === In-process unit tests ===

@pytest.fixture(scope="module")
def images():
    part = pl.datasets.fashion_mnist().train.sample(40, seed=0)
    return part.images, part.labels


def fine_tuner():
    keras.utils.set_random_seed(0)
    ft = pl.FineTuner(pl.backbones.ConvNet(widths=(4, 8), blocks_per_stage=1),
                      pl.heads.Classifier(10))
    ft.compile(learning_rate=1e-3)
    return ft


def dataset(images, batch_size=8):
    return pl.data.image_dataset(*images, batch_size=batch_size, seed=0)


def test_checkpoints_rotate_and_record_their_position(images, tmp_path):
    saver = pl.training.Checkpoint(tmp_path, every_steps=2, keep=2)
    history = fine_tuner().fit(dataset(images), epochs=2, callbacks=[saver], verbose=0)
    assert history.epoch == [0, 1]
    assert [p.name for p in saver.checkpoints()] == ["step-000008", "step-000010"]
    state = saver.read_state(saver.latest())
    assert (state["epoch"], state["batch"], state["steps_per_epoch"]) == (2, 0, 5)
    older = saver.read_state(saver.checkpoints()[0])
    assert (older["epoch"], older["batch"]) == (1, 3)


def test_checkpoint_cadence_holds_with_several_steps_per_execution(images, tmp_path):
    ft = fine_tuner()
    ft.compile(learning_rate=1e-3, steps_per_execution=5)  # one execution per epoch
    saver = pl.training.Checkpoint(tmp_path, every_steps=3, keep=10)
    ft.fit(dataset(images), epochs=2, callbacks=[saver], verbose=0)
    # Executions end at steps 5 and 10, each past a multiple of 3: both are saved,
    # each recording the batch it really reached.
    assert [p.name for p in saver.checkpoints()] == ["step-000005", "step-000010"]
    assert saver.read_state(saver.latest())["step"] == int(ft.optimizer.iterations) == 10


def test_a_finished_run_resumes_to_nothing_and_resume_false_starts_over(images, tmp_path):
    _ = fine_tuner().fit(dataset(images), epochs=1, verbose=0,
                         callbacks=[pl.training.Checkpoint(tmp_path)])
    again = fine_tuner()
    history = again.fit(dataset(images), epochs=1, verbose=0,
                        callbacks=[pl.training.Checkpoint(tmp_path)])
    assert history.epoch == [] and int(again.optimizer.iterations) == 5  # restored
    fresh = fine_tuner()
    fresh.fit(dataset(images), epochs=1, verbose=0,
              callbacks=[pl.training.Checkpoint(tmp_path, resume=False)])
    assert int(fresh.optimizer.iterations) == 5  # trained from step 0 again


def test_a_checkpoint_of_another_model_or_other_data_is_refused(images, tmp_path):
    fine_tuner().fit(dataset(images), epochs=1, verbose=0,
                     callbacks=[pl.training.Checkpoint(tmp_path, every_steps=2)])
    keras.utils.set_random_seed(0)
    other = pl.FineTuner(pl.backbones.ConvNet(widths=(4, 16), blocks_per_stage=1),
                         pl.heads.Classifier(10))
    other.compile()
    with pytest.raises(ValueError, match="written by a different model"):
        other.fit(dataset(images), epochs=2, verbose=0,
                  callbacks=[pl.training.Checkpoint(tmp_path)])
    with pytest.raises(ValueError, match="`x` yields 3 batches per epoch.*had 5"):
        fine_tuner().fit(dataset(images, batch_size=16), epochs=2, verbose=0,
                         callbacks=[pl.training.Checkpoint(tmp_path)])


def test_a_non_finite_loss_stops_with_the_step_and_the_last_good_checkpoint(images, tmp_path):
    saver = pl.training.Checkpoint(tmp_path, every_steps=1)
    fine_tuner().fit(dataset(images), epochs=1, verbose=0, callbacks=[saver])
    before = {p.name: (p / "model.weights.h5").stat().st_mtime_ns for p in saver.checkpoints()}
    poisoned = (np.where(np.arange(40)[:, None, None] == 3, np.nan, images[0] / 255.0)
                .astype("float32"), images[1])
    with pytest.raises(FloatingPointError, match=r"became nan at step 6 .*step-000005"):
        fine_tuner().fit(pl.data.image_dataset(*poisoned, batch_size=8, shuffle=False),
                         epochs=2, verbose=0, callbacks=[pl.training.Checkpoint(tmp_path)])
    after = {p.name: (p / "model.weights.h5").stat().st_mtime_ns for p in saver.checkpoints()}
    assert after == before  # the bad state was never saved
    ft = fine_tuner()
    with pytest.raises(FloatingPointError, match="No checkpoint was written"):
        ft.fit(pl.data.image_dataset(*poisoned, batch_size=8, shuffle=False), epochs=1,
               verbose=0)


@pytest.mark.parametrize(
    "kwargs, error, fragment",
    [
        (dict(directory=None), TypeError, "`directory`"),
        (dict(directory="ck", every_steps=0), ValueError, "`every_steps`"),
        (dict(directory="ck", keep=0), ValueError, "`keep`"),
    ],
)
def test_bad_checkpoint_arguments_name_themselves(kwargs, error, fragment):
    with pytest.raises(error, match=fragment):
        pl.training.Checkpoint(**kwargs)


@pytest.mark.slow
def test_two_checkpoint_callbacks_or_an_endless_dataset_are_refused(images, tmp_path):
    ft = fine_tuner()
    with pytest.raises(ValueError, match="several pl.training.Checkpoint"):
        ft.fit(dataset(images), epochs=1, verbose=0,
               callbacks=[pl.training.Checkpoint(tmp_path / "a"),
                          pl.training.Checkpoint(tmp_path / "b")])
    with pytest.raises(ValueError, match="`x` repeats forever: pass `steps_per_epoch`"):
        ft.fit(dataset(images).repeat(), epochs=1, verbose=0,
               callbacks=[pl.training.Checkpoint(tmp_path)])
    history = ft.fit(dataset(images).repeat(), epochs=2, steps_per_epoch=3, verbose=0,
                     callbacks=[pl.training.Checkpoint(tmp_path)])
    assert len(history.epoch) == 2 and int(ft.optimizer.iterations) == 6


@pytest.mark.slow
def test_skip_nonfinite_skips_a_poisoned_batch_as_if_it_were_not_there(images):
    x, y = images[0] / 255.0, images[1]
    poisoned = np.where(np.arange(40)[:, None, None] < 8, np.nan, x).astype("float32")

    def train(data):
        ft = fine_tuner()  # ConvNet: BatchNorm statistics would turn NaN if not restored
        ft.compile(optimizer=pl.training.SGD(0.05), skip_nonfinite=True)
        history = ft.fit(data, epochs=2, verbose=0)
        return ft, history

    skipped, history = train(pl.data.image_dataset(poisoned, y, batch_size=8, shuffle=False))
    clean, clean_history = train(pl.data.image_dataset(x[8:].astype("float32"), y[8:],
                                                       batch_size=8, shuffle=False))
    assert all(np.isfinite(history.history["loss"]))
    for name in ("loss", "accuracy", "macro_f1"):  # the metrics never saw the bad batch
        np.testing.assert_allclose(history.history[name], clean_history.history[name], atol=1e-6)
    for a, b in zip(skipped.get_weights(), clean.get_weights()):
        np.testing.assert_allclose(a, b, atol=1e-6)
    all_bad = pl.data.image_dataset(np.full((80, 28, 28), np.nan, "float32"),
                                    np.zeros(80, "int32"), batch_size=8, shuffle=False)
    ft = fine_tuner()
    ft.compile(skip_nonfinite=True)
    with pytest.raises(FloatingPointError, match="10 batches in a row were skipped"):
        ft.fit(all_bad, epochs=1, verbose=0)
