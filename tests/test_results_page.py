"""qtbook.results_page: the results page is built from the executed notebooks' numbers and PUBLISHED."""
import json

import nbformat
import pytest

from qtbook.published import PUBLISHED
from qtbook.results_page import chapter, render, write_page

RUN = {"profile": "cpu", "machine": "CPU (x86_64, 2 cores, 1 thread(s)), no GPU", "commit": "abc1234",
       "started": "2026-11-27T22:00:00+00:00", "wall_s": 600.0}


def executed(path, numbers, dataset="mnist", blocks=16, with_json=True):
    """A stand-in executed notebook: a parameters cell, papermill's parameters, and the numbers' JSON file
    (with a `run` record in `numbers`, it is a recorded run)."""
    nb = nbformat.v4.new_notebook()
    params = nbformat.v4.new_code_cell(f'profile = "auto"\ndataset = "{dataset}"\nblocks = {blocks}\n')
    params.metadata["tags"] = ["parameters"]
    nb.cells = [params, nbformat.v4.new_code_cell("glue(...)")]
    nb.metadata["papermill"] = {"parameters": {"profile": "small", "results": "x.json"}}
    nbformat.write(nb, path)
    if with_json:
        path.with_suffix(".json").write_text(json.dumps(numbers))
    return path


def test_numbers_from_json(tmp_path):
    numbers = {"qt_reference_acc": 0.875, "classical_acc": 0.9512, "n_train": 10000, "n_test": 2000}
    a = chapter(executed(tmp_path / "02_mnist.ipynb", numbers))
    assert a["numbers"] == numbers
    assert a["params"]["dataset"] == "mnist"
    assert a["params"]["profile"] == "small"
    assert a["params"]["blocks"] == 16
    with pytest.raises(FileNotFoundError, match=r"02_again\.json is missing: run the notebook with"):
        chapter(executed(tmp_path / "02_again.ipynb", numbers, with_json=False))


def test_table_puts_ours_beside_published(tmp_path, cells):
    mnist = executed(tmp_path / "02_mnist.ipynb", {"qt_reference_acc": 0.875, "classical_acc": 0.9512,
                                                   "classical_budget_acc": 0.9, "classical_budget_params": 1400,
                                                   "qt_improved_acc": 0.93, "qt_improved_params": 1497,
                                                   "qt_improved_train_acc": 0.99,  # training: no row of its own
                                                   "n_train": 60000, "n_test": 10000, "run": RUN})
    resumed = {**RUN, "resumed_runs": 8, "train_s": 6 * 3600.0}  # continued from checkpoints of earlier sittings
    cifar = executed(tmp_path / "04_cifar10.ipynb", {"qt_reference_L19_acc": 0.25, "qt_reference_L19_best_acc": 0.3,
                                                     "classical_acc": 0.4, "qt_epochs": 10, "run": resumed},
                     dataset="cifar10")
    page = render([mnist, cifar])
    runs = page.split("## The runs")[1]
    assert any("10 min" in row for row in cells(runs))
    assert "6.0 h of training in several sessions (the last 10 min)" in runs
    assert "60,000/10,000 images" in page
    assert "10 epochs" in page
    assert "1 seed" in page
    assert "no GPU" in page
    assert "best" not in page.split("## The runs")[0]
    row = next(row for row in cells(page) if row[0] == "QT reference, L = 16")
    assert f"{100 * PUBLISHED['mnist']['qt_acc'][-1]:.2f} %" in row
    assert "87.50 %" in row
    row = next(row for row in cells(page) if row[0] == "classical CNN" and "95.12 %" in row)
    assert f"{100 * PUBLISHED['mnist']['classical_acc']:.2f} %" in row
    assert any(row[0] == "QT reference, L = 19" and "25.00 %" in row for row in cells(page))
    assert any(row[:2] == ("classical CNN, QT's budget", "1,400") for row in cells(page))
    assert "QT improved" in page
    assert "improved_train" not in page.split("## The runs")[0]
    assert "99.00 %" not in page.split("## The runs")[0]
    assert "## MNIST" in page
    assert "## CIFAR-10" in page
    assert "## FashionMNIST" not in page


def test_write_page_replaces_the_marker(tmp_path):
    template = tmp_path / "results.md"
    template.write_text("# Results\n\nprose\n\n<!-- RESULTS: generated -->\nold\n")
    out = write_page(template, tmp_path / "out.md", [executed(tmp_path / "02_mnist.ipynb",
                                                              {"qt_reference_acc": 0.5, "run": RUN})])
    text = out.read_text()
    assert text.startswith("# Results\n\nprose\n")
    assert "old" not in text
    assert "50.00 %" in text


def test_science_chapter_gives_the_headline_table(tmp_path, cells):
    numbers = {"mnist_qt_mean": 0.95, "mnist_qt_std": 0.004, "mnist_qt_params": 1497, "mnist_qt_seeds": 3,
               "mnist_qt_epochs": 10, "mnist_cnn_mean": 0.985, "mnist_cnn_std": 0.001, "mnist_cnn_params": 6690,
               "fashion_mnist_long_qt_lr_cosine_mean": 0.84, "fashion_mnist_long_qt_lr_cosine_std": 0.002,
               "fashion_mnist_long_qt_lr_cosine_seeds": 3, "fashion_mnist_long_qt_lr_cosine_epochs": 20,
               "mnist_protocol_qt_chosen_mean": 0.97, "mnist_protocol_qt_chosen_std": 0.001,
               "mnist_protocol_qt_chosen_params": 1497, "mnist_protocol_qt_chosen_seeds": 3,
               "mnist_protocol_qt_chosen_epochs": 10}
    page = render([executed(tmp_path / "07_science.ipynb", numbers)])
    assert "## Headline: mean ± std over seeds" in page
    rows = cells(page)
    assert ("**MNIST**, chosen on the test set, 10 epochs, 3 seeds", "95.00 ± 0.40 % (1,497)", "–", "–",
            "98.50 ± 0.10 % (6,690)") in rows
    assert ("**FashionMNIST**, chosen on the test set, 20 epochs, 3 seeds", "–", "84.00 ± 0.20 %", "–", "–") in rows
    assert ("**MNIST**, chosen on validation, 10 epochs, 3 seeds", "–", "–", "97.00 ± 0.10 % (1,497)", "–") in rows
    header = next(row for row in rows if row[0] == "runs")
    assert "budget" not in header
    assert "QT chosen" in header


def test_ci_scale_numbers_never_stand_beside_published_ones(tmp_path):
    small = executed(tmp_path / "02_mnist.ipynb", {"qt_reference_acc": 0.1234, "classical_acc": 0.5})
    page = render([small])
    assert "12.34 %" not in page.split(":::")[0]
    assert "## MNIST" not in page
    assert "CI-scale check, not a result" in page


def test_science_chapter_s_cifar10_qt_runs_are_on_the_page(tmp_path, cells):
    numbers = {"cifar10_blocks_L19_qt": 0.5459, "cifar10_blocks_L19_cnn": 0.5444, "cifar10_blocks_L38_qt": None}
    page = render([executed(tmp_path / "07_science.ipynb", numbers)])
    assert "## CIFAR-10 QT in the science chapter" in page
    assert ("19", "54.59 %", "54.44 %") in cells(page)


def test_the_page_opens_with_the_verdict_from_the_records(tmp_path):
    """book/results.md's verdict: a figure and a paragraph whose numbers are the recorded runs' (results/runs)."""
    from qtbook import report, verdict
    from qtbook.results_page import with_verdict

    runs = report.load_runs()
    text = with_verdict("# Results\n\n<!-- VERDICT: here -->\n\nrest\n", tmp_path, runs)
    assert text.startswith("# Results\n\n```{figure} verdict.png")
    assert text.endswith("rest\n")
    assert (tmp_path / "verdict.png").stat().st_size > 10_000
    for c in verdict.comparisons(runs).values():
        qt, budget = c["qt"], c["budget"]
        assert f"{100 * qt['mean']:.2f}" in text
        assert f"{qt['params']:,}" in text
        assert f"{budget['params']:,}" in text
        assert f"{abs(100 * (qt['mean'] - budget['mean'])):.2f} points" in text
    if "protocol" in report.grid_names(runs, "mnist"):
        assert verdict.comparisons(runs)["mnist"]["qt_model"] == "QT chosen on validation"
    assert "JPEG" in text
    assert "± 0.00" not in text
