"""The publication rules of the chapters, read from their sources (no execution): every closing section cites
glued numbers, every chapter checks its parameters first, no runtime is written by hand, and the staging opens
each page with its recorded run or with a CI banner."""
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
CLOSING = ("## What we saw", "## Summary", "## What the numbers say")
sys.path.insert(0, str(ROOT / "tools"))
import stage_book  # noqa: E402


def cells(path):
    return json.loads(path.read_text())["cells"]


def text(cell):
    return "".join(cell["source"])


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_closing_section_cites_glued_numbers(path):
    cs = cells(path)
    closing = [i for i, c in enumerate(cs) if c["cell_type"] == "markdown"
               and any(re.search(f"^{h}$", text(c), re.M) for h in CLOSING)]
    assert closing, f"{path.name}: no closing section ({' / '.join(CLOSING)})"
    i = closing[-1]
    body = re.split("|".join(f"^{h}$" for h in CLOSING), text(cs[i]), flags=re.M)[-1]
    computed = i + 1 < len(cs) and "report.findings" in text(cs[i + 1])  # chapter 7: findings computed from runs
    assert "{glue:text}`" in body or computed, f"{path.name}: its closing section cites no glued number"
    pattern = r'glue\(f?"([a-zA-Z0-9_{}\[\]"\']+)"'
    glued = {m for c in cs if c["cell_type"] == "code" for m in re.findall(pattern, text(c))}
    for key in re.findall(r"\{glue:text\}`([a-zA-Z0-9_]+)", body):
        found = any(re.fullmatch(re.sub(r"\{[^}]*\}", ".+", g), key) for g in glued)
        assert found, f"{path.name}: {key} is never glued"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_no_hand_written_runtime_and_parameters_checked_first(path):
    cs = cells(path)
    assert not any("**Runtime:**" in text(c) for c in cs if c["cell_type"] == "markdown"), path.name
    params = next(i for i, c in enumerate(cs) if "parameters" in c["metadata"].get("tags", []))
    first_code = next(c for c in cs[params + 1:] if c["cell_type"] == "code")
    assert "check_params(" in text(first_code), f"{path.name}: the first code cell does not check the parameters"


def test_staging_banner_says_recorded_or_ci(tmp_path):
    recorded = ROOT / "results" / "notebooks"
    for nb in filter(stage_book.complete, recorded.glob("*.ipynb")):
        note = stage_book.banner(nb)
        run = json.loads(nb.with_suffix(".json").read_text())["run"]
        assert "Recorded run" in note and run["commit"] in note and run["machine"] in note
    resumed = stage_book.sittings({"wall_s": 180.0, "resumed_runs": 8, "train_s": 6 * 3600.0})
    assert "3 minutes in its last sitting" in resumed and "8 runs" in resumed and "6.0 hours" in resumed
    assert stage_book.sittings({"wall_s": 600.0}) == "wall time 10 minutes"
    assert stage_book.sittings({"wall_s": 22.2, "resumed_runs": 8, "train_s": 1.0}).startswith("wall time 22 s in")
    ci = tmp_path / "01_concept.ipynb"
    ci.write_text("{}")
    assert "CI-scale check, not results" in stage_book.banner(ci)


import chapter_cells  # noqa: E402


def test_chapter_cells_are_generated_from_pyproject():
    assert chapter_cells.main(["--check"]) == 0, "run `python tools/chapter_cells.py` after changing pyproject.toml"
    url, tag = chapter_cells.release()
    assert url.startswith("https://github.com/") and tag.startswith("v")
    readme = (ROOT / "README.md").read_text()
    assert set(re.findall(r"git\+(https://github\.com/[^\s\"]+)", readme)) == {f"{url}@{tag}"}


class _Version(tuple):
    major = property(lambda self: self[0])
    minor = property(lambda self: self[1])


@pytest.mark.parametrize("version, tq", [((3, 12), True), ((3, 13), False)])
def test_colab_cell_installs_the_release_and_checks_python(monkeypatch, capsys, version, tq):
    """The cell run as on Colab (no command really runs): clone of the tag, pip with TorchQuantum only on
    Python 3.10 to 3.12, then into the clone's notebooks/ folder."""
    calls, moved = [], []
    monkeypatch.setitem(sys.modules, "google.colab", object())
    monkeypatch.setattr(sys, "version_info", _Version((*version, 0)))
    monkeypatch.setattr("subprocess.run", lambda cmd, **kw: calls.append(cmd) or subprocess.CompletedProcess(cmd, 0))
    monkeypatch.setattr("os.path.isdir", lambda path: False)
    monkeypatch.setattr("os.chdir", moved.append)
    exec(chapter_cells.cell_source("02_mnist"), {})
    url, tag = chapter_cells.release()
    assert calls[0][:6] == ["git", "clone", "-q", "--depth", "1", "--branch"] and calls[0][6:8] == [tag, url]
    assert calls[1][-1] == ("/content/qt[torchquantum]" if tq else "/content/qt")
    assert any("torchquantum==0.1.8" in c for c in calls) == tq
    assert ("TorchQuantum installs on Python 3.10 to 3.12 only" in capsys.readouterr().out) != tq
    assert moved == ["/content/qt/notebooks"]


def test_colab_cell_says_in_one_line_what_to_do_when_the_clone_fails(monkeypatch):
    monkeypatch.setitem(sys.modules, "google.colab", object())
    monkeypatch.setattr("os.path.isdir", lambda path: False)
    monkeypatch.setattr("subprocess.run", lambda cmd, **kw: subprocess.CompletedProcess(
        cmd, 128, "", "Cloning into '/content/qt'...\nfatal: Remote branch v0.1.0 not found in upstream origin\n"))
    with pytest.raises(SystemExit) as e:
        exec(chapter_cells.cell_source("01_concept"), {})
    url, tag = chapter_cells.release()
    assert str(e.value) == (f"git failed (fatal: Remote branch v0.1.0 not found in upstream origin): check that {url} "
                            f"has the tag {tag} (a fork sets both in pyproject.toml), then run this cell again")


def test_a_curve_s_trend_reads_its_last_third():
    from qt_helpers import late_gain, trend

    rising, flat = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6], [0.1, 0.5, 0.6, 0.6, 0.605, 0.6]
    assert late_gain(rising) == pytest.approx(0.2) and trend(rising) == "still rising"
    assert late_gain(flat) == pytest.approx(0.0) and trend(flat) == "flat"
    assert trend([0.6, 0.5]) == "falling" and late_gain([0.7]) == 0  # one epoch: nothing to compare with


def test_every_model_and_backend_keeps_one_colour():
    from qt_helpers import BACKENDS, model_color

    backends = [*BACKENDS, "gatewise"]
    assert len({model_color(b) for b in backends}) == len(backends)  # chapter 6's bars: the same in every figure
    assert model_color("QT improved (L=95)") == model_color("QT improved") != model_color("QT reference")
    assert model_color("classical CNN, QT's budget") != model_color("classical CNN")
