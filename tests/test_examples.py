"""Every notebook in examples/ runs top to bottom on a tiny budget (PRETRAINLIB_QUICK=1),
so none can rot; the scripts are run by tests/test_demo.py."""

import pathlib

import nbclient
import nbformat
import pytest

EXAMPLES = pathlib.Path(__file__).resolve().parents[1] / "examples"
NOTEBOOKS = sorted(EXAMPLES.glob("*.ipynb"))


def test_the_five_documented_notebooks_are_there():
    assert {path.stem for path in NOTEBOOKS} >= {
        "text_mlm_to_classifier", "image_autoencoder_to_classifier", "tf_hub_fine_tune",
        "custom_objective", "distributed"}


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda path: path.stem)
def test_notebook_runs_top_to_bottom(path, tmp_path, monkeypatch):
    monkeypatch.setenv("PRETRAINLIB_QUICK", "1")
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    notebook = nbformat.read(path, as_version=4)
    assert not any(cell.get("outputs") for cell in notebook.cells), \
        f"{path.name} is committed with outputs; clear them"
    client = nbclient.NotebookClient(notebook, timeout=600, kernel_name="python3",
                                     resources={"metadata": {"path": str(tmp_path)}})
    client.execute()  # raises CellExecutionError, with the cell and traceback, on failure
    printed = "".join(output.get("text", "") for cell in notebook.cells
                      for output in cell.get("outputs", []))
    assert printed.strip(), f"{path.name} printed nothing"
