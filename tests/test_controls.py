"""Controls of QT at equal budget: their sizes, what they train, the control grid and a run through the CLI."""
import json

import pytest
import torch

from qt_helpers.cli import build_parser, main
from qt_helpers.controls import (
    CONTROLS,
    VARIANTS,
    ClassicalGenerator,
    LowRankCNN,
    UniformProbabilities,
    control_model,
    control_table,
    param_table,
    trainable_params,
)
from qt_helpers.models import budget_cnn, num_params
from qt_helpers.qt import qt_model
from qtbook import experiments
from qtbook.experiments import SEEDS, commands, run_commands, run_key
from qtbook.published import QT_BLOCKS, qt_params
from test_experiments import write_run, write_tune


@pytest.mark.parametrize(("dataset", "blocks", "options"), [("mnist", 16, {}), ("fashion_mnist", 4, {}),
                                                      ("cifar10", 19, {"standardize": True})])
def test_each_variant_counts_its_trainable_parameters_at_qt_s_budget(dataset, blocks, options):
    table = {v: (n, gap) for v, n, gap in control_table(dataset, blocks, **options)}
    qt = trainable_params(qt_model(dataset, blocks, seed=42, **options))
    assert list(table) == list(VARIANTS)
    assert table["qt"] == (qt, 0.0)
    assert qt == qt_params(dataset, blocks) + (10 if options else 0)  # 10 scales with standardisation
    for v in ("classical-generator", "low-rank-cnn"):  # equal budget
        assert abs(table[v][1]) <= 0.02, (v, table[v])
    mapping = trainable_params(qt_model(dataset, blocks, seed=42, **options).mapping)
    for v in ("frozen-circuit", "mapping-only"):  # the mapping model (and the 10 scales) alone, by design
        assert table[v][0] == mapping + (10 if options else 0) < qt


def _step(net):
    net.zero_grad(set_to_none=True)
    net(torch.randn(4, 1, 28, 28)).square().mean().backward()


def test_frozen_and_uniform_controls_train_only_the_mapping_model():
    for variant in ("frozen-circuit", "mapping-only"):
        net = control_model(variant, "mnist", 2, seed=1)
        before = net.qnn()
        _step(net)
        trained = {k for k, p in net.named_parameters() if p.requires_grad}
        assert trained == {k for k, _ in net.named_parameters() if k.startswith("mapping.")}
        assert all(p.grad is None for k, p in net.named_parameters() if not k.startswith("mapping."))
        assert all(p.grad is not None for p in net.mapping.parameters())  # (a bias's is ~0: w - mean(w) drops it)
        assert all(p.grad.abs().sum() > 0 for p in net.mapping.parameters() if p.dim() == 2)  # every matrix learns
        torch.optim.Adam([p for p in net.parameters() if p.requires_grad], lr=0.1).step()
        assert torch.equal(net.qnn(), before)  # the probabilities never move
    uniform = control_model("mapping-only", "mnist", 2).qnn
    assert isinstance(uniform, UniformProbabilities)
    assert torch.allclose(uniform(), torch.full((2**13,), 2.0**-13))
    assert control_model("frozen-circuit", "mnist", 2, seed=1).qnn.angles.requires_grad is False


def test_classical_generator_and_low_rank_cnn_train_their_own_parameters():
    gen = control_model("classical-generator", "mnist", 16, seed=3)
    assert isinstance(gen.qnn, ClassicalGenerator)
    assert gen.qnn().shape == (2**13,)
    assert gen.qnn().sum().item() == pytest.approx(1.0, abs=1e-5)
    _step(gen)
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in gen.qnn.parameters())
    low = control_model("low-rank-cnn", "mnist", 16, seed=3)
    assert isinstance(low, LowRankCNN)
    assert all(not p.requires_grad for p in low.net.parameters())
    _step(low)
    assert all(p.grad is not None for p in low.parameters() if p.requires_grad)
    x = torch.randn(3, 1, 28, 28)
    assert torch.allclose(low.export()(x), low(x), atol=1e-5)  # a plain CNN holding the generated weights
    info = param_table(low, budget=1497)
    assert info["trainable_params"] == 1481
    assert info["ranks"] == [3, 4, 2, 2]
    assert -0.02 < info["vs_budget"] < 0
    with pytest.raises(ValueError, match="choose one of qt, frozen-circuit"):
        control_model("random", "mnist")


@pytest.mark.parametrize("dataset", ["mnist", "cifar10"])
@pytest.mark.parametrize("standardize", [False, True])
def test_budget_cnn_has_qt_s_parameters_within_2_percent_in_the_block_sweep(dataset, standardize):
    for L in QT_BLOCKS[dataset][1:] if dataset == "mnist" else (38, 95):  # MNIST L = 1: too few for 2 % steps
        budget = qt_params(dataset, L)
        n = num_params(budget_cnn(dataset, budget, standardize=standardize))
        assert abs(n - budget) <= 0.02 * budget, (L, n, budget)


def test_standardised_budget_cnn_has_one_trained_scale_per_tensor():
    plain, std = budget_cnn("mnist", 1497), budget_cnn("mnist", 1497, standardize=True)
    conv = std.features[0]
    w = conv.weight.view(conv.weight.shape[0], -1) / conv.parametrizations.weight[0].scale
    assert torch.allclose(w.mean(1), torch.zeros(len(w)), atol=1e-5)
    assert torch.allclose(w.std(1), torch.ones(len(w)), atol=1e-4)
    scales = [k for k, _ in std.named_parameters() if k.endswith(".scale")]
    assert len(scales) == 8
    assert abs(num_params(std) - num_params(plain)) <= 0.02 * 1497


def _tune_records(out, dataset="mnist", blocks=16, best="qt-lr-cosine-lr1e-2", epochs=None, extra=()):
    """Validation accuracies as the finished tune trials would record them."""
    write_tune(out, dataset, best=(best, "cnn-budget-cosine-lr3e-3"), epochs=epochs, extra=extra, blocks=blocks)


def test_control_grid_tunes_each_variant_on_validation_then_trains_three_seeds(tmp_path):
    with pytest.raises(ValueError, match="run the tune grid first"):
        commands("control", "mnist", tmp_path)
    _tune_records(tmp_path)
    cmds = commands("control", "mnist", tmp_path)
    args = {p.stem: build_parser().parse_args(a) for p, a in cmds}
    trials = {k: a for k, a in args.items() if "-lr" in k}
    # QT chose lr 1e-2, the budget CNN 3e-3: each control tries its centre's and half a decade either side
    lrs = {v: ("1e-3", "3e-3", "1e-2") if v == "low-rank-cnn" else ("3e-3", "1e-2", "3e-2") for v in CONTROLS}
    assert sorted(trials) == sorted(f"{v}-lr{lr}" for v, x in lrs.items() for lr in x)
    assert set(experiments.CONTROL_CENTRE) == set(CONTROLS)
    assert all(a.val_fraction == 0.1 and a.test == "never" and a.epochs == 10 and a.blocks == 16
               and a.schedule == "cosine" and a.activation is None for a in trials.values())  # QT's chosen recipe
    assert {trials[f"{v}-lr1e-2"].control for v in CONTROLS} == set(CONTROLS)
    # QT itself: the protocol grid's chosen runs, the same experiments (copied, not retrained)
    protocol = {p.stem: a for p, a in commands("protocol", "mnist", tmp_path)}
    qt = {k: a for k, a in {p.stem: a for p, a in cmds}.items() if k.startswith("qt-seed")}
    assert [run_key(qt[f"qt-seed{s}"]) for s in SEEDS] == [run_key(protocol[f"qt-chosen-seed{s}"]) for s in SEEDS]
    assert not any(k.startswith("frozen-circuit-seed") for k in args)  # its trials have not run

    def finish(run, val):
        write_run(tmp_path, "mnist", "control", run, {"val_accuracy": val, "test_accuracy": None, "qt_params": 249})

    def frozen(kind):
        return {p.stem: build_parser().parse_args(a) for p, a in commands("control", "mnist", tmp_path)
                if p.stem.startswith(f"frozen-circuit-{kind}")}

    for lr in lrs["frozen-circuit"]:  # its trials finish; the largest lr, 3e-2, is the best
        finish(f"frozen-circuit-lr{lr}", 0.8 if lr == "3e-2" else 0.7)
    assert sorted(frozen("lr")) == ["frozen-circuit-lr1e-1", "frozen-circuit-lr1e-2", "frozen-circuit-lr3e-2",
                                    "frozen-circuit-lr3e-3"]  # so one trial above it, before any seed
    assert frozen("lr")["frozen-circuit-lr1e-1"].lr == 0.1
    assert not frozen("seed")
    finish("frozen-circuit-lr1e-1", float("nan"))  # a trial whose record does not fit: still to run
    assert not frozen("seed")
    finish("frozen-circuit-lr1e-1", 0.75)  # worse than 3e-2: the best is inside the trials, the seeds follow
    seeds = frozen("seed")
    assert sorted(seeds) == [f"frozen-circuit-seed{s}" for s in SEEDS]
    assert all((a.lr, a.control, a.test, a.val_fraction) == (3e-2, "frozen-circuit", "end", 0.1)
               for a in seeds.values())
    assert [a.seed for a in seeds.values()] == list(SEEDS)
    for lr in lrs["mapping-only"]:  # every trial diverged: the next step is below them
        finish(f"mapping-only-lr{lr}", None)
        record = json.loads((tmp_path / "mnist" / "control" / f"mapping-only-lr{lr}.json").read_text())
        (tmp_path / "mnist" / "control" / f"mapping-only-lr{lr}.json").write_text(json.dumps({**record,
                                                                                              "diverged": True}))
    runs = [p.stem for p, _ in commands("control", "mnist", tmp_path) if p.stem.startswith("mapping-only")]
    assert runs == ["mapping-only-lr1e-3", *(f"mapping-only-lr{lr}" for lr in lrs["mapping-only"])]


def test_a_control_trains_through_the_cli_and_its_record_says_what_it_was(pack_dir, capsys):
    small = ["--blocks", "4", "--epochs", "1", "--batch-size", "100", "--data-dir", str(pack_dir), "--no-progress",
             "--lr", "1e-2"]
    for variant in CONTROLS:
        out = pack_dir / f"{variant}.json"
        assert main(["train", "--control", variant, *small, "--json", str(out)]) == 0
        r = json.loads(out.read_text())
        assert r["control"] == variant
        assert r["budget"] == 78 * 4 + 249
        assert r["test_accuracy"] is not None
        assert r["trainable_params"] == r["qt_params"] < r["budget"] * 1.02
        assert "commit" in r
    assert "low-rank-cnn" in capsys.readouterr().out
    assert main(["train", "--control", "low-rank-cnn", *small, "--blocks", "1"]) == 2  # rank 1 is over 327
    assert "a low-rank CNN of rank 1 has 537 parameters, more than 327" in capsys.readouterr().err
    assert main(["train", "--control", "random", *small]) == 2
    assert main(["train", "--model", "classical", "--control", "mapping-only", *small]) == 2


def test_tiny_control_grid_trains_the_chosen_seed_run_once(pack_dir, tmp_path, monkeypatch):
    out = tmp_path / "runs"
    small = ["--data-dir", str(pack_dir), "--batch-size", "100"]
    _tune_records(out, blocks=2, epochs=1, extra=small)
    monkeypatch.setattr(experiments, "CONTROL_CENTRE", {"mapping-only": "qt"})
    monkeypatch.setattr(experiments, "CONTROL_SPAN", 0)  # one trial: QT's chosen lr
    [(trial, _)] = commands("control", "mnist", out, epochs=1, blocks=2, extra=small, runs=["mapping-only-*"])
    # the trial as it would be recorded (its training is the seed runs' below)
    write_run(out, "mnist", "control", trial.stem, {"val_accuracy": 0.5, "test_accuracy": None, "qt_params": 249},
              epochs=1, extra=small, blocks=2)
    seeds = commands("control", "mnist", out, epochs=1, blocks=2, extra=small, runs=["mapping-only-seed*"])
    assert [p.stem for p, _ in seeds] == [f"mapping-only-seed{s}" for s in SEEDS]
    assert run_commands(seeds[:1], out) == []  # through the grid: checkpoint, subprocess, record
    record = json.loads(seeds[0][0].read_text())
    assert record["control"] == "mapping-only"
    assert record["test_accuracy"] is not None
    assert record["n_val"] == 20
    assert record["lr"] == 1e-2  # QT's chosen
    assert "commit" in record
    assert not seeds[0][0].with_suffix(".pt").exists()
    assert run_commands(seeds[:1], out) == []  # finished: skipped


def test_force_redoes_a_control_run_once_not_in_both_phases(tmp_path, monkeypatch):
    _tune_records(tmp_path)
    calls = []
    monkeypatch.setattr(experiments, "run_commands", lambda cmds, *_, **__: calls.append([p.stem for p, _ in cmds]))
    assert experiments.main(["control", "--dataset", "mnist", "--out", str(tmp_path), "--runs", "mapping-only-lr*",
                             "--force"]) == 0
    assert calls == [[f"mapping-only-lr{lr}" for lr in ("3e-3", "1e-2", "3e-2")]]
    calls.clear()
    grid = ["control", "--dataset", "mnist", "--out", str(tmp_path), "--runs", "mapping-only-lr*"]
    assert experiments.main(grid) == 0
    assert len(calls) == 2  # without --force both phases plan; finished runs are skipped inside run_commands


def test_control_trials_table_shows_the_trials_so_far_and_the_choices_once_seeds_start(tmp_path):
    from qtbook import report

    _tune_records(tmp_path)

    def finish(run, val, **more):
        write_run(tmp_path, "mnist", "control", run, {"val_accuracy": val, "test_accuracy": None, "qt_params": 249,
                                                       **more})

    finish("low-rank-cnn-lr1e-3", 0.61)
    finish("low-rank-cnn-lr3e-3", 0.64)
    table = report.control_trials_table(report.load_runs(tmp_path), "mnist")
    assert "| low-rank CNN" in table
    assert "61.00 %" in table
    assert "**" not in table  # no seed has started: nothing chosen yet
    assert table.endswith("Still being tuned, no seed run yet: classical generator (0 trials finished); low-rank CNN "
                          "(2 trials finished); frozen random circuit (0 trials finished); mapping model alone (0 "
                          "trials finished).")
    for lr, val in (("3e-3", 0.6), ("1e-2", 0.8), ("3e-2", 0.7)):  # the frozen circuit chooses 1e-2, its seeds run
        finish(f"frozen-circuit-lr{lr}", val)
    write_run(tmp_path, "mnist", "control", "frozen-circuit-seed42", {"test_accuracy": 0.79, "qt_params": 249})
    table = report.control_trials_table(report.load_runs(tmp_path), "mnist")
    assert "**frozen-circuit-lr1e-2**" in table
    assert table.count("**") == 2
    assert "frozen random circuit (" not in table.split("Still being tuned")[1]


def test_control_progress_states_each_variant_as_far_as_it_has_run(tmp_path):
    """Chapter 7's CIFAR-10 sentence: seeds so far with paired differences to QT, else the best validation trial."""
    from qtbook import report

    _tune_records(tmp_path)
    assert report.control_progress(report.load_runs(tmp_path), "mnist") == ""
    for run, val in (("low-rank-cnn-lr1e-3", 0.61), ("low-rank-cnn-lr3e-3", 0.64), ("frozen-circuit-lr3e-3", 0.6),
                     ("frozen-circuit-lr1e-2", 0.8), ("frozen-circuit-lr3e-2", 0.7)):  # the frozen circuit: 1e-2
        write_run(tmp_path, "mnist", "control", run, {"val_accuracy": val, "test_accuracy": None, "qt_params": 249})
    for seed, acc in ((42, 0.81), (43, 0.83), (44, 0.82)):
        write_run(tmp_path, "mnist", "control", f"qt-seed{seed}", {"test_accuracy": acc, "qt_params": 249})
    write_run(tmp_path, "mnist", "control", "frozen-circuit-seed42", {"test_accuracy": 0.79, "qt_params": 249})
    text = report.control_progress(report.load_runs(tmp_path), "mnist")
    assert text.startswith("On MNIST so far (test accuracy; points from QT, seed by seed): QT chosen 82.00 ± 1.00 % "
                           "(3 seeds);")
    assert "frozen random circuit 79.00 % (seed 42, -2.00)" in text
    assert "low-rank CNN no seed yet (64.00 % on validation, best of 2 trials)" in text
    assert "classical generator" not in text  # no trial yet
    assert text.endswith("No control is ahead of QT on any seed run.")
    write_run(tmp_path, "mnist", "control", "frozen-circuit-seed43", {"test_accuracy": 0.84, "qt_params": 249})
    assert report.control_progress(report.load_runs(tmp_path), "mnist").endswith(
        "Ahead of QT: the frozen random circuit (on 1 of 2 seeds).")
    [ax] = report.plot_controls(report.load_runs(tmp_path), ["mnist"])  # each variant keeps its place in the figure
    labels = [t.get_text() for t in ax.get_xticklabels()]
    assert labels[1:] == ["classical generator\nno seed yet", "low-rank CNN\nno seed yet", "frozen random circuit\n249 "
                          "params", "mapping model alone\nno seed yet"]
    assert ax.get_title().startswith("MNIST:")
