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


def test_a_budget_cnn_tuned_while_qt_is_not_is_shown_and_no_verdict_drawn(tmp_path):
    # MNIST as CIFAR-10 stood while QT's trials on validation ran: untuned seeds of both, the budget CNN's
    # protocol seeds, QT's tune trials half run
    from test_experiments import _record, write_run, write_tune

    for seed, acc in zip((42, 43, 44), (0.94, 0.95, 0.96), strict=True):
        write_run(tmp_path, "mnist", "seeds", f"qt-improved-seed{seed}", _record(acc, 1497, seed))
        write_run(tmp_path, "mnist", "seeds", f"cnn-budget-seed{seed}", _record(acc - 0.01, 1438, seed, qt=False))
    write_tune(tmp_path)
    for path in (tmp_path / "mnist" / "tune").glob("qt-*-lr1e-2.json"):
        path.unlink()
    for seed, acc in zip((42, 43, 44), (0.965, 0.97, 0.975), strict=True):
        write_run(tmp_path, "mnist", "protocol", f"cnn-budget-seed{seed}", _record(acc, 1438, seed, qt=False))
    runs = report.load_runs(tmp_path)
    [(dataset, c)] = verdict.comparisons(runs).items()
    assert dataset == "mnist"
    assert c["how"] == "neither tuned on this dataset"
    assert c["tuned_budget"]["mean"] == pytest.approx(0.97)
    text = verdict.verdict_text(runs)
    assert "the CNN of its budget (1,438 parameters" in text
    assert "97.00 ± 0.50 %" in text
    assert "QT is 2.00 points below it" in text
    assert "QT's own trials on validation are still running" in text
    assert "no verdict on MNIST yet" in text


def test_the_intro_opens_with_the_verdict(tmp_path, runs):
    template = (ROOT / "book" / "intro.md").read_text(encoding="utf-8")
    lines = [line for line in template.splitlines() if line.strip()]
    assert lines[0].startswith("# ")
    assert lines[1].startswith("<!-- VERDICT")
    text = with_verdict(template, tmp_path, runs)
    assert "<!-- VERDICT" not in text
    assert (tmp_path / "verdict.png").stat().st_size > 10_000
    assert text.index("```{figure} verdict.png") < text.index("QT with") < text.index("## ")
