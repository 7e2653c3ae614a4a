"""README.md: every code block runs as written (in the repository's folder, with the activated .venv's commands on
PATH), except a block right after a `<!-- readme-test: skip (reason) -->` line; and the results it promises hold.

The console scripts are made from pyproject.toml's [project.scripts] entries (what `make setup` installs), so the
commands the README names are the ones the package declares. `make train` and the Python example train on all of
MNIST (about a minute each on a 2-core CPU); they are checked for >= 95 % test accuracy, never for a time.
"""
import json
import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")
BLOCK = re.compile(r"(?:<!-- readme-test: skip \((?P<reason>[^)]*)\) -->\n)?```(?P<lang>\w+)\n(?P<code>.*?)```", re.S)
BLOCKS = [(m["lang"], m["code"], m["reason"]) for m in BLOCK.finditer(README)]
RUN = [(lang, code) for lang, code, reason in BLOCKS if reason is None]


def test_readme_is_short_and_every_block_is_run_or_says_why_not():
    assert len(README.splitlines()) <= 120
    assert README.count("```") == 2 * len(BLOCKS), "a code block the pattern missed"
    for lang, code, reason in BLOCKS:
        assert lang in ("bash", "python"), f"a {lang} block: the test runs bash and python only"
        assert reason is None or len(reason) > 10, f"a skipped block needs its reason: {code[:60]}"
    tested = ("make train", "import qt_helpers as qth", "qt-train --help", "qtbook.report", "pytest")
    assert sorted(next(p for p in tested if p in code) for _, code in RUN) == sorted(tested), \
        "every block that runs is checked by one test below"


@pytest.fixture(scope="module")
def scripts(tmp_path_factory):
    """A folder with pyproject.toml's console scripts, run by this Python (as `pip install` writes them)."""
    folder = tmp_path_factory.mktemp("bin")
    for name, target in tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"].items():
        module, func = target.split(":")
        path = folder / name
        path.write_text(f"#!{sys.executable}\nimport sys\nfrom {module} import {func}\nsys.exit({func}())\n")
        path.chmod(0o755)
    return folder


def run_block(lang, code, scripts):
    env = {**os.environ, "PATH": f"{scripts}{os.pathsep}{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
           "PYTHONPATH": str(ROOT)}
    cmd = ["bash", "-e", "-o", "pipefail", "-c", code] if lang == "bash" else [sys.executable, "-c", code]
    r = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, check=False, text=True, timeout=1800)
    assert r.returncode == 0, f"README block failed ({r.returncode}):\n{code}\n{r.stdout[-2000:]}\n{r.stderr[-2000:]}"
    return r.stdout


def block(pattern):
    """The one README block (that runs) whose code contains `pattern`."""
    found = [b for b in RUN if pattern in b[1]]
    assert len(found) == 1, f"{len(found)} README blocks hold {pattern!r}"
    return found[0]


def test_make_train_reaches_95_percent_on_full_mnist_and_runs_again(scripts):
    out = ROOT / "build" / "train.json"
    for _ in range(2):  # a second `make train` replaces the first run's files
        before = out.stat().st_mtime if out.exists() else None
        run_block(*block("make train"), scripts)
        assert out.stat().st_mtime != before
    r = json.loads(out.read_text())
    assert (r["n_train"], r["n_test"], r["epochs"], r["recipe_name"]) == (60000, 10000, 5, "tuned")
    assert r["test_accuracy"] >= 0.95


def test_python_example_reaches_95_percent(scripts):
    printed = run_block(*block("import qt_helpers as qth"), scripts)
    accuracy = float(re.search(r"test accuracy ([\d.]+)%", printed)[1])
    assert accuracy >= 95


def test_command_line_example_trains_then_extends_the_run(scripts):
    printed = run_block(*block("qt-train --help"), scripts)
    assert printed.startswith("usage: qt-train ")
    r = json.loads((ROOT / "build" / "small.json").read_text())
    assert (r["epochs"], r["extended_from_epochs"], len(r["history"]["epoch"])) == (2, 1, 2)
    assert r["settings"]["lr"] == 1e-2
    assert r["settings"]["schedule"] == "cosine"
    assert r["history"]["lr"] == [0.0, 0.0]  # each decay ends at 0: the first epoch's, then the added epoch's
    assert r["history"]["test_acc"][1] > r["history"]["test_acc"][0] > 0.2  # QT learns, and more in epoch 2


def test_results_and_contributing_blocks_run(scripts):
    assert "## " in run_block(*block("qtbook.report"), scripts)
    assert "passed" in run_block(*block("pytest"), scripts)
