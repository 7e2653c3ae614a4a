"""The intro's verdict: one figure and one paragraph, every number read from the recorded runs."""
from pathlib import Path

import pytest

from qt_helpers.notebook import percent
from qt_helpers.science import report, verdict

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def runs():
    return report.load_runs()


def test_the_verdict_s_numbers_are_the_protocol_runs(runs):
    v = verdict.verdict(runs)
    assert set(v) == {"mnist", "fashion_mnist"}
    for dataset, m in v.items():
        protocol = report.seeds_summary(runs, dataset, "protocol")
        assert m["qt"] == protocol["QT chosen on validation"] and m["budget"] == protocol["classical CNN, QT's budget"]
        assert m["cnn"] == report.seeds_summary(runs, dataset)["classical CNN"]
        assert len(m["qt"]["accs"]) == len(m["budget"]["accs"]) == 3 and m["paired"] == 3
        assert m["gap"] == pytest.approx(m["qt"]["mean"] - m["budget"]["mean"])
        assert m["trials"] == {"qt": 6, "classical": 6} and m["val_fraction"] == pytest.approx(0.1)
        assert m["qt"]["params"] <= 1497 and m["budget"]["params"] <= 1497 < m["cnn"]["params"]


def test_the_paragraph_cites_them_in_points(runs):
    v = verdict.verdict(runs)
    text = verdict.paragraph(v)
    m = v["mnist"]
    for s in (m["qt"], m["budget"], m["cnn"]):
        assert percent(s["mean"], s["std"]) in text
    assert f"{abs(100 * m['gap']):.2f} points" in text and f"{m['qt']['params']:,} parameters" in text
    assert f"{m['ahead']} of 3 seeds" in text and "10 % validation split" in text
    assert "% below" not in text and "% above" not in text  # differences are points
    assert "No run of the validation protocol" in verdict.paragraph({})


def test_write_intro_puts_the_verdict_first(tmp_path, runs):
    template = ROOT / "book" / "intro.md"
    lines = [line for line in template.read_text().splitlines() if line.strip()]
    assert lines[0].startswith("# ") and lines[1] == verdict.MARKER  # right under the title
    out = verdict.write_intro(template, tmp_path / "book" / "intro.md", runs)
    text = out.read_text()
    assert verdict.MARKER not in text and (tmp_path / "book" / verdict.FIGURE).stat().st_size > 10_000
    assert text.index("```{figure} verdict.png") < text.index("**The verdict.**") < text.index("## What QT is")
    bad = tmp_path / "no-marker.md"
    bad.write_text("# Title\n")
    with pytest.raises(ValueError, match="no <!-- VERDICT --> line"):
        verdict.write_intro(bad, tmp_path / "x.md", runs)
