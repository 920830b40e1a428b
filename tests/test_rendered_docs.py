"""The pages that quote measured figures are rendered from docs/results/*.json by
scripts/render_results.py: a number edited by hand, or typed into a template instead
of read from a JSON, fails here."""

import importlib.util
import pathlib
import re
import shutil

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def renderer():
    spec = importlib.util.spec_from_file_location("render_results",
                                                  ROOT / "scripts" / "render_results.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_every_rendered_page_is_what_its_template_and_json_give(renderer, capsys):
    assert renderer.main(["--check"]) == 0, capsys.readouterr().out


def test_a_number_edited_by_hand_fails_the_check(renderer, tmp_path, monkeypatch, capsys):
    page = tmp_path / "results.md"
    shutil.copy(renderer.PAGES["results.md"], page)
    monkeypatch.setitem(renderer.PAGES, "results.md", page)
    assert renderer.main(["--check", "results.md"]) == 0
    text = page.read_text()
    figure = re.search(r"\b0\.\d{3}\b", text).group(0)  # the first measured figure
    edited = f"0.{(int(figure[2:]) + 1) % 1000:03d}"
    page.write_text(text.replace(figure, edited, 1))
    assert renderer.main(["--check", "results.md"]) == 1
    report = capsys.readouterr().out
    assert edited in report and "docs/templates/" in report  # names the line and the fix


def test_a_template_may_not_type_a_measured_figure(renderer):
    assert renderer.check_template("macro-F1 rose to 0.777 with pretraining.\n")
    assert not renderer.check_template("macro-F1 rose to {{ n(0.777) }}.\n")
    allowed = ("`mask_ratio=0.5` in code\n```bash\npython x.py --lr 0.5\n```\n"
               "Python 3.10–3.12 and WordNet 3.0 are names, not figures.\n")
    assert not renderer.check_template(allowed)


def test_a_placeholder_that_fails_names_its_line(renderer, tmp_path, monkeypatch):
    (tmp_path / "results.md").write_text("# t\n\n{{ J('no_such_study') }}\n")
    monkeypatch.setattr(renderer, "TEMPLATES", tmp_path)
    with pytest.raises(ValueError, match=r"results.md:3: .*no_such_study"):
        renderer.render("results.md")


def test_spread_and_differences_follow_one_convention(renderer):
    # Sample standard deviation (ddof=1) and a paired Student-t interval.
    assert renderer.ms([0.70, 0.74, 0.72]) == "0.720 ± 0.020"
    assert renderer.pd([0.78, 0.77, 0.79], [0.57, 0.58, 0.56]) == "+0.210 [+0.160, +0.260]"
    assert renderer.verdict([0.7, 0.6], [0.6, 0.7], "a", "b") == "a and b are level"


# Results pages say what was measured; how the team got there belongs in CHANGELOG.md.
LAB_NOTEBOOK = re.compile(r"\(target|target:|target ≥|the target was|targets are|\baims?\b|"
                          r"\bmet\b|superseded|uncommitted|an earlier|earlier version|"
                          r"Status \(|\bcommit [0-9a-f]{7}|was growing|not yet measured")


@pytest.mark.parametrize("page", ["README.md", "docs/results.md", "docs/benchmarks.md",
                                  "docs/choosing_a_policy.md"])
def test_results_pages_speak_in_the_product_voice(page):
    found = [f"{page}:{i}: {line.strip()[:90]}"
             for i, line in enumerate((ROOT / page).read_text().splitlines(), 1)
             if LAB_NOTEBOOK.search(line)]
    assert not found, "\n".join(found)


def test_other_pages_quote_no_figure_of_their_own(renderer):
    # Measured figures live on the rendered pages only; the guides link to them.
    rendered = {path.resolve() for path in renderer.PAGES.values()}
    templates = ROOT / "docs" / "templates"
    found = []
    for path in sorted((ROOT / "docs").glob("**/*.md")):
        if path.resolve() in rendered or templates in path.parents:
            continue
        found += [f"{path.relative_to(ROOT)}{line}" for line in
                  renderer.check_template(path.read_text())]
    assert not found, "link to docs/results.md instead:\n" + "\n".join(found)
