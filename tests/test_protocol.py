"""Every objective, policy, transform, backbone and head registered in tests/harness.py
passes the same checks: it fits, its config round-trips, it reloads in a fresh process
with safe_mode; quantized, every backbone, transform and head reloads and exports (and,
in test_protocol_mirrored.py, under MirroredStrategy on 2 logical CPUs every case
trains as one device)."""

import json
import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest

import harness

SCRIPT = pathlib.Path(__file__).parent / "scripts" / "harness_run.py"
CASES = harness.cases()


def run(mode, folder):
    done = subprocess.run([sys.executable, str(SCRIPT), mode, str(folder)],
                          capture_output=True, text=True, timeout=900,
                          env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads((folder / f"{mode}.json").read_text())


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    folder = tmp_path_factory.mktemp("harness")
    # Two processes: nothing of the saving one (registered classes, layer name counters,
    # traced functions) can help the loading one.
    return run("save", folder), run("load", folder)


def ok(result, case):
    assert "error" not in result, f"{case}:\n{result.get('error')}"
    return result


def test_every_kind_has_cases():
    assert {case.split("/")[0] for case in CASES} == set(harness.KINDS)
    assert len(CASES) >= 22


HEAVY_TO_BUILD = {"head/ClozeClassifier"}  # pretrains a masked LM to build its head


@pytest.mark.parametrize("case", [pytest.param(c, marks=pytest.mark.slow) if c in HEAVY_TO_BUILD
                                  else c for c in CASES])
def test_builds_and_its_part_round_trips_its_config(case):
    """The harness's basics, in the fast tier: every case builds, and its part (the
    objective, policy, transform, backbone, head or method it registers) comes back
    from Keras serialization with the same config. Fitting, reloading in a fresh
    process and quantizing are the slow checks below."""
    import keras

    model, _, _ = harness.build(case)
    piece = harness.part(case, model)
    restored = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(piece))
    assert type(restored) is type(piece)
    assert restored.get_config() == piece.get_config()
    assert type(model).from_config(model.get_config()) is not None


@pytest.mark.slow
@pytest.mark.parametrize("case", CASES)
def test_fits_and_round_trips_its_config(saved, case):
    result = ok(saved[0][case], case)
    assert np.isfinite(result["losses"]).all() and result["moved"], result
    assert result["config"], f"{case}: config does not round-trip"


@pytest.mark.slow
@pytest.mark.parametrize("case", CASES)
def test_reloads_in_a_fresh_process_with_safe_mode(saved, case):
    ok(saved[0][case], case)
    result = ok(saved[1][case], case)
    assert result["gap"] <= 1e-5, result


@pytest.mark.slow
@pytest.mark.parametrize("case", [c for c in CASES if c.split("/")[0] in harness.SERVED])
def test_quantized_it_reloads_and_exports_with_the_same_outputs(saved, case):
    """Every backbone, transform and head case, quantized to int8, int4 or float8 (in turn), then saved to
    .keras and exported: both read back in a fresh process give its outputs."""
    quantized = ok(saved[0][case], case)
    assert quantized["mode"] in ("int8", "int4", "float8")
    assert quantized["quantized"] > 0, quantized  # at least the head's logits layer
    result = ok(saved[1][case], case)
    assert "quantized_error" not in result, f"{case}:\n{result['quantized_error']}"
    assert result["quantized_gap"] <= 1e-5 and result["exported_gap"] <= 1e-5, result
