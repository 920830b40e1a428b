"""The documentation site builds in strict mode (a warning fails), and the API
reference covers the public names."""

import os
import re
import pathlib
import subprocess
import sys

import pretrainlib as pl

ROOT = pathlib.Path(__file__).resolve().parents[1]


def test_site_builds_strictly(tmp_path):
    run = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict",
                          "--config-file", str(ROOT / "mkdocs.yml"), "--site-dir",
                          str(tmp_path / "site")],
                         capture_output=True, text=True, timeout=300, cwd=ROOT,
                         env={**os.environ, "NO_MKDOCS_2_WARNING": "1"})
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    page = (tmp_path / "site" / "api" / "verbs" / "index.html").read_text()
    assert 'id="pretrainlib.FineTuner"' in page and "policy" in page


def test_api_reference_lists_every_public_name():
    documented = "\n".join(p.read_text() for p in (ROOT / "docs" / "api").glob("*.md"))
    modules = {"objectives": pl.objectives, "freezing": pl.freezing, "heads": pl.heads,
               "backbones": pl.backbones, "data": pl.data, "text": pl.text,
               "hub": pl.hub, "epochs": pl.epochs, "compress": pl.compress,
               "tune": pl.tune, "semi": pl.semi}
    missing = [f"pretrainlib.{name}.{attr}" for name, module in modules.items()
               for attr in getattr(module, "__all__", [])
               if f"::: pretrainlib.{name}.{attr}\n" not in documented + "\n"]
    assert not missing, f"add to docs/api/: {missing}"
    for verb in ("Pretrainer", "FineTuner", "Evaluator"):
        assert f"::: pretrainlib.{verb}\n" in documented


# What user-facing text must never say: how the team works, or where outside the
# repository its notes live.
INTERNAL = re.compile(r"\b[Ii]ssue #?\d+|\b[Ss]essions?\b|can_start_another|device tool|"
                      r"\.\./shared|DESIGN\.md|STYLE\.md")
USER_FACING = ["README.md", "docs/**/*.md", "examples/*.py", "examples/*.ipynb",
               "pretrainlib/**/*.py", "benchmarks/*.py", "benchmarks/*.sh"]


def test_user_docs_speak_to_users():
    found = []
    for pattern in USER_FACING:
        for path in sorted(ROOT.glob(pattern)):
            for number, line in enumerate(path.read_text().splitlines(), 1):
                if INTERNAL.search(line):
                    found.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()[:80]}")
    assert not found, "rewrite for users:\n" + "\n".join(found)


def test_markdown_links_stay_inside_the_repository():
    outside = []
    templates = ROOT / "docs" / "templates"  # checked as the pages they render
    for path in [ROOT / "README.md", *sorted((ROOT / "docs").glob("**/*.md"))]:
        if templates in path.parents:
            continue
        for target in re.findall(r"\]\(([^)#\s]+)", path.read_text()):
            if "://" in target or target.startswith("mailto:"):
                continue
            resolved = (path.parent / target).resolve()
            if ROOT not in resolved.parents or not resolved.exists():
                outside.append(f"{path.relative_to(ROOT)} -> {target}")
    assert not outside, f"links that leave the repository or go nowhere: {outside}"
