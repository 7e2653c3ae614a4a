"""The verdict up front (intro and results pages): one figure and one paragraph, every number from the runs."""
from pathlib import Path

import pytest

from qtbook import report, verdict
from qtbook.results_page import with_verdict

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def runs():
    return report.load_runs()


def test_the_paragraph_cites_the_protocol_runs_in_points(runs):
    text = verdict.verdict_text(runs)
    for dataset in ("mnist", "fashion_mnist"):
        qt = report.seeds_summary(runs, dataset, "protocol")["QT chosen on validation"]
        assert f"{100 * qt['mean']:.2f} ± {100 * qt['std']:.2f} %" in text
        assert f"{qt['params']:,}" in text
    assert " points below " in text or " points above " in text
    assert "% below" not in text
    assert "% above" not in text


def test_a_budget_cnn_tuned_while_qt_is_not_is_shown_and_no_verdict_drawn(runs):
    text = verdict.verdict_text(runs)
    for d, c in verdict.comparisons(runs).items():  # CIFAR-10 while QT's trials on validation run
        tuned = c["tuned_budget"]
        if tuned:
            assert c["how"] == "neither tuned on this dataset"
            assert f"the CNN of its budget ({tuned['params']:,} parameters" in text
            assert f"{100 * tuned['mean']:.2f} ± {100 * tuned['std']:.2f} %" in text
            assert f"no verdict on {verdict.TITLES[d]} yet" in text


def test_the_intro_opens_with_the_verdict(tmp_path, runs):
    template = (ROOT / "book" / "intro.md").read_text(encoding="utf-8")
    lines = [line for line in template.splitlines() if line.strip()]
    assert lines[0].startswith("# ")
    assert lines[1].startswith("<!-- VERDICT")
    text = with_verdict(template, tmp_path, runs)
    assert "<!-- VERDICT" not in text
    assert (tmp_path / "verdict.png").stat().st_size > 10_000
    assert text.index("```{figure} verdict.png") < text.index("QT with") < text.index("## ")
