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
    pattern = r'glue\(\s*f?"([a-zA-Z0-9_{}\[\]"\']+)"'
    glued = {m for c in cs if c["cell_type"] == "code" for m in re.findall(pattern, text(c))}
    if any("science_page.numbers(" in text(c) for c in cs if c["cell_type"] == "code"):  # chapter 7
        from qtbook import report, science_page

        glued |= set(science_page.numbers(report.load_runs()))
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
        assert "Recorded run" in note
        assert run["commit"] in note
        assert run["machine"] in note
    resumed = stage_book.sittings({"wall_s": 180.0, "resumed_runs": 8, "train_s": 6 * 3600.0})
    assert "3 minutes in its last session" in resumed
    assert "8 runs" in resumed
    assert "6.0 hours" in resumed
    assert stage_book.sittings({"wall_s": 600.0}) == "wall time 10 minutes"
    assert stage_book.sittings({"wall_s": 22.2, "resumed_runs": 8, "train_s": 1.0}).startswith("wall time 22 s in")
    ci = tmp_path / "01_concept.ipynb"
    ci.write_text("{}")
    assert "CI-scale check, not results" in stage_book.banner(ci)
    ci.with_suffix(".json").write_text(json.dumps({"concept_n_train": 60000, "concept_n_test": 10000}))
    full = stage_book.banner(ci)  # chapter 1 trains on all of MNIST in CI too
    assert "CI-scale check" not in full
    assert "60,000 training and 10,000 test images" in full


import chapter_cells  # noqa: E402


def test_chapter_cells_are_generated_from_pyproject():
    assert chapter_cells.main(["--check"]) == 0, "run `python tools/chapter_cells.py` after changing pyproject.toml"
    url, tag = chapter_cells.release()
    assert url.startswith("https://github.com/")
    assert tag.startswith("v")
    readme = (ROOT / "README.md").read_text()
    assert set(re.findall(r"git\+(https://github\.com/[^\s\"#]+)", readme)) == {f"{url}@{tag}"}


class _Version(tuple):
    major = property(lambda self: self[0])
    minor = property(lambda self: self[1])


@pytest.mark.parametrize(("version", "tq"), [((3, 12), True), ((3, 13), False)])
def test_colab_cell_installs_the_release_and_checks_python(monkeypatch, capsys, version, tq):
    """The cell run as on Colab (no command really runs): clone of the tag, pip with TorchQuantum only on
    Python 3.10 to 3.12, then into the clone's notebooks/ folder."""
    calls, moved = [], []
    monkeypatch.setitem(sys.modules, "google.colab", object())
    monkeypatch.setattr(sys, "version_info", _Version((*version, 0)))
    monkeypatch.setattr("subprocess.run", lambda cmd, **_kw: calls.append(cmd) or subprocess.CompletedProcess(cmd, 0))
    monkeypatch.setattr("pathlib.Path.is_dir", lambda _self: False)
    monkeypatch.setattr("os.chdir", moved.append)
    exec(chapter_cells.cell_source("02_mnist"), {})
    url, tag = chapter_cells.release()
    assert calls[0][:6] == ["git", "clone", "-q", "--depth", "1", "--branch"]
    assert calls[0][6:8] == [tag, url]
    assert calls[1][-2:] == [("/content/qt[torchquantum]" if tq else "/content/qt"), "/content/qt/tools"]
    assert any("torchquantum==0.1.8" in c for c in calls) == tq
    assert ("TorchQuantum installs on Python 3.10 to 3.12 only" in capsys.readouterr().out) != tq
    assert moved == ["/content/qt/notebooks"]


def test_colab_cell_says_in_one_line_what_to_do_when_the_clone_fails(monkeypatch):
    monkeypatch.setitem(sys.modules, "google.colab", object())
    monkeypatch.setattr("pathlib.Path.is_dir", lambda _self: False)
    monkeypatch.setattr("subprocess.run", lambda cmd, **_kw: subprocess.CompletedProcess(
        cmd, 128, "", "Cloning into '/content/qt'...\nfatal: Remote branch v0.1.0 not found in upstream origin\n"))
    with pytest.raises(SystemExit) as e:
        exec(chapter_cells.cell_source("01_concept"), {})
    url, tag = chapter_cells.release()
    assert str(e.value) == (f"git failed (fatal: Remote branch v0.1.0 not found in upstream origin): check that {url} "
                            f"has the tag {tag} (a fork sets both in pyproject.toml), then run this cell again")


def test_a_curve_s_trend_reads_its_last_third():
    from qtbook import late_gain, trend

    rising, flat = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6], [0.1, 0.5, 0.6, 0.6, 0.605, 0.6]
    assert late_gain(rising) == pytest.approx(0.2)
    assert trend(rising) == "still rising"
    assert late_gain(flat) == pytest.approx(0.0)
    assert trend(flat) == "flat"
    assert trend([0.6, 0.5]) == "falling"
    assert late_gain([0.7]) == 0  # one epoch: nothing to compare with


def test_every_model_and_backend_keeps_one_colour():
    from qt_helpers import BACKENDS, model_color

    backends = [*BACKENDS, "gatewise"]
    assert len({model_color(b) for b in backends}) == len(backends)  # chapter 6's bars: the same in every figure
    assert model_color("QT improved (L=95)") == model_color("QT improved") != model_color("QT reference")
    assert model_color("classical CNN, QT's budget") != model_color("classical CNN")


RECORDED = sorted((ROOT / "results" / "notebooks").glob("*.ipynb"))


@pytest.mark.parametrize("path", RECORDED, ids=lambda p: p.stem)
def test_a_recorded_chapter_reads_as_its_source(path):
    """Prose fixes go to both copies: a recorded run's markdown cells are its source notebook's, in order (the
    staged note is added at build time, not stored)."""
    def markdown(p):
        return [text(c) for c in cells(p) if c["cell_type"] == "markdown"]

    assert markdown(path) == markdown(ROOT / "notebooks" / path.name), \
        f"{path.name}: edit the markdown of notebooks/{path.name} and its recorded copy alike"


# A difference of accuracies is in points: a signed percentage, or one that is "short"/"ahead" of another.
SIGNED_PERCENT = re.compile(r"(?<![\w.])[+−-]\s?\d+(?:\.\d+)?\s?%|\d+(?:\.\d+)?\s?%\s+(?:short|ahead|behind)\b")
SIGNED_GLUE = re.compile(r"\{glue:text\}`[A-Za-z0-9_]+:\+[^`]*%`")  # a glued number printed as "+1.23%"


def prose(path):
    """A chapter's Markdown cells, or a Markdown page, without code spans and math."""
    texts = [text(c) for c in cells(path) if c["cell_type"] == "markdown"] if path.suffix == ".ipynb" \
        else [path.read_text()]
    return [re.sub(r"`[^`]*`|\$[^$]*\$", "", t) for t in texts]


def pages():
    return [*NOTEBOOKS, *RECORDED, *sorted((ROOT / "book").glob("*.md"))]


@pytest.mark.parametrize("path", pages(), ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_differences_are_in_points(path):
    raw = [text(c) for c in cells(path) if c["cell_type"] == "markdown"] if path.suffix == ".ipynb" \
        else [path.read_text()]
    for t in raw:
        assert not SIGNED_GLUE.findall(t), f"{path.name}: a difference glued as a signed percentage"
    for t in prose(path):
        assert not SIGNED_PERCENT.findall(t), f"{path.name}: a difference of accuracies in %, not points"


def test_generated_pages_state_differences_in_points_and_one_seed_as_one():
    """The verdict, chapter 7's tables and its appendix, generated from results/runs: no difference in %, no
    ± 0.00 from a single seed, and a one-seed cell says so."""
    from qtbook import report, science_page, verdict

    runs = report.load_runs()
    texts = [verdict.verdict_text(runs), science_page.appendix_markdown(runs), science_page.seeds_overview(runs),
             science_page.goals_overview(runs), science_page.against_budget_overview(runs)]
    for t in texts:
        assert not SIGNED_PERCENT.findall(t), SIGNED_PERCENT.findall(t)
        assert "± 0.00" not in t
    one = {(d, m) for d in report.datasets(runs) for m, s in report.seeds_summary(runs, d).items()
           if len(s["accs"]) == 1}
    if one:  # e.g. CIFAR-10's lr-cosine: one of its three seeds finished
        assert "1 seed only" in science_page.seeds_overview(runs)
    for line in science_page.seeds_overview(runs).splitlines():
        assert not ("3 seeds" in line and "1 seed" in line)


def test_results_page_never_shows_one_seed_as_three():
    from qtbook.results_page import _mean_std_cell

    one = {"m_mean": 0.6254, "m_std": 0.0, "m_params": 27961, "m_seeds": 1}
    assert _mean_std_cell(one, "m") == "62.54 % (1 seed; 27,961)"
    three = {**one, "m_std": 0.0048, "m_seeds": 3}
    assert "± 0.48" in _mean_std_cell(three, "m")


JARGON = re.compile(r"\b(lease|leases|sitting|sittings|pack|packs|glued|grid|grids)\b", re.I)


@pytest.mark.parametrize("path", [p for p in pages() if p.stem != "intro"],
                         ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_prose_uses_plain_words(path):
    """The house's words for things (a GPU "lease", a "sitting", a data "pack", a "grid" of runs, "glued"
    numbers) are not the reader's: the prose says session, copy, experiment, recorded."""
    for t in prose(path):
        assert not JARGON.findall(t), f"{path.name}: {sorted(set(JARGON.findall(t)))}"


WIDTH = 88  # characters of code the book's column shows without scrolling


def shown_code(path):
    """(cell index, line) of every code line a page shows (not of cells it removes), except the closing
    environment cell, which tools/chapter_cells.py writes alike in every chapter (chapter 1 included)."""
    for i, c in enumerate(cells(path)):
        tags = c["metadata"].get("tags", [])
        shown = not {"remove-cell", "remove-input", "injected-parameters"} & set(tags)
        if c["cell_type"] == "code" and shown and "environment()" not in text(c):
            yield from ((i, line) for line in text(c).splitlines())


@pytest.mark.parametrize("path", NOTEBOOKS + RECORDED, ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_code_fits_the_column(path):
    wide = [(i, len(line)) for i, line in shown_code(path) if len(line) > WIDTH]
    assert not wide, f"{path.name}: code lines wider than {WIDTH} characters (cell, length): {wide}"


def test_the_published_caveats_are_stated_as_known():
    """FashionMNIST's published test accuracy (78.71 %) is on the full test set, only MNIST's (91.20 %) on
    1,000 images; the one-epoch baselines are known for MNIST and FashionMNIST, not for CIFAR-10; chapters 2
    and 3 trained the improved recipe with the cosine schedule, not the plateau one."""
    for path in pages():
        for t in prose(path):
            for sentence in re.split(r"(?<=[.;])\s", t.replace("\n", " ")):
                assert not ("78.71" in sentence and "1,000" in sentence and "91.20" not in sentence), \
                    f"{path.name}: {sentence}"
                assert not ("CIFAR-10" in sentence and re.search(r"(one|single) epoch", sentence)
                            and "MNIST" not in sentence), f"{path.name}: {sentence}"
    from qt_helpers import RECIPES
    from qtbook import report, science_page

    assert RECIPES["improved"].schedule == "cosine"
    appendix = science_page.appendix_markdown(report.load_runs())
    assert "the cosine schedule, as here" in appendix
    assert "plateau" not in appendix.split("Ten epochs")[1][:400]
