"""Experiment grids: one `train` command per run, resumable, identical runs made once, and their report."""
import json
import shlex
from pathlib import Path

import pytest
import torch

from qt_helpers.cli import build_parser, spec_from_argv
from qtbook import report
from qtbook.experiments import GRIDS, SEEDS, commands, finished, run_commands, run_key, shots
from qtbook.experiments import main as grids_main


@pytest.mark.parametrize(("grid", "n_runs"), [("blocks", 19), ("ablation", 8), ("seeds", 12), ("shots", 15),
                                               ("long", 6)])
def test_every_run_is_one_valid_train_command(grid, n_runs, tmp_path):
    cmds = commands(grid, "mnist", tmp_path)
    assert len(cmds) == n_runs
    assert len({p for p, _ in cmds}) == n_runs
    for path, argv in cmds:
        args = build_parser().parse_args(argv)
        assert args.command == "train"
        assert args.json == str(path)
        assert args.n_train is None  # full data
        assert path.parent == tmp_path / "mnist" / grid


def test_grids_hold_the_issue_s_comparisons(tmp_path):
    blocks = {p.stem: spec_from_argv(a) for p, a in commands("blocks", "mnist", tmp_path)}
    assert [blocks[f"cnn-budget-L{L}"].budget for L in (1, 16)] == [327, 1497]  # 78 L + 249
    assert blocks["qt-L16"].blocks == 16
    assert blocks["cnn"].model == "classical"
    assert blocks["cnn"].budget is None
    assert blocks["qt-lr-cosine-L4"].activation != "relu"
    assert blocks["qt-L4"].activation == "relu"
    seeds = [spec_from_argv(a).seed for _, a in commands("seeds", "mnist", tmp_path)]
    assert sorted(set(seeds)) == list(SEEDS)
    assert len(SEEDS) >= 3
    s = [(p.stem, spec_from_argv(a)) for p, a in commands("shots", "mnist", tmp_path)]
    assert [a.shots for _, a in s] == [None, 2**13, 2**15, 2**17, 2**19] * 3  # 2^n ... 2^(n+6), three seeds
    assert [(name, a.seed) for name, a in s[::5]] == [("exact", 42), ("exact-seed43", 43), ("exact-seed44", 44)]
    assert shots("cifar10")[::3] == (2**19, 2**25)
    cifar = {p.stem: spec_from_argv(a) for p, a in commands("seeds", "cifar10", tmp_path)}
    assert cifar["qt-improved-seed42"].blocks == 95
    assert cifar["cnn-budget-seed42"].budget == 27951
    assert cifar["qt-lr-cosine-seed43"].standardize
    assert cifar["qt-improved-seed44"].standardize  # CIFAR-10 only
    assert not any(spec_from_argv(a).standardize for _, a in commands("seeds", "mnist", tmp_path))


def test_cifar10_grids_train_longer_and_runs_filter_by_name(tmp_path):
    cmds = commands("blocks", "cifar10", tmp_path, runs=["cnn*"])
    assert [p.stem for p, _ in cmds] == ["cnn"] + [f"cnn-budget-L{L}" for L in (19, 38, 57, 76, 95)]
    assert all(spec_from_argv(a).epochs == 20 for _, a in cmds)
    assert spec_from_argv(commands("long", "cifar10", tmp_path)[0][1]).epochs == 40
    assert grids_main(["blocks", "--runs", "xx*", "--dry-run"]) == 2


def test_run_key_is_the_experiment_not_the_spelling(tmp_path):
    blocks = dict(commands("blocks", "cifar10", tmp_path / "a"))
    seeds = dict(commands("seeds", "cifar10", tmp_path / "b"))
    cnn, seed42 = blocks[tmp_path / "a/cifar10/blocks/cnn.json"], seeds[tmp_path / "b/cifar10/seeds/cnn-seed42.json"]
    assert "--seed" not in cnn
    assert run_key(cnn) == run_key(seed42)  # 42 is the default seed
    assert run_key(cnn) != run_key(seeds[tmp_path / "b/cifar10/seeds/cnn-seed43.json"])


def test_unknown_grid_is_a_clear_error(capsys):
    assert grids_main(["sweep", "--dry-run"]) == 2
    assert "choose one of blocks, ablation, seeds, shots, long, tune, protocol, control" in capsys.readouterr().err
    assert GRIDS == ("blocks", "ablation", "seeds", "shots", "long", "tune", "protocol", "control")


def test_grid_runs_once_resumes_and_copies_identical_runs(pack_dir, tmp_path, capsys):
    out = tmp_path / "runs"
    small = ["--blocks", "2", "--epochs", "1", "--data-dir", str(pack_dir)]
    shots = commands("shots", "mnist", out, extra=small)[:2]  # exact, 2^13 shots
    ablation = [c for c in commands("ablation", "mnist", out, extra=small) if c[0].stem == "improved"]
    assert run_commands(shots + ablation, out) == []
    copy = json.loads(ablation[0][0].read_text())
    assert copy["same_run_as"] == "mnist/shots/exact.json"
    assert copy["test_accuracy"] == json.loads(
        shots[0][0].read_text())["test_accuracy"]
    assert set(finished(out).values()) == {p for p, _ in shots}  # copies are not runs
    assert "2 runs to do" in capsys.readouterr().out
    run_commands(shots + ablation, out)  # everything exists: nothing runs
    assert "0 runs to do" in capsys.readouterr().out
    runs = report.load_runs(out)
    assert [s for s, _ in report.shots_rows(runs, "mnist")] == [2**13, None]
    assert "2^13 = 8,192" in report.shots_table(runs, "mnist")
    assert "ReLU mapping model" in report.ablation_table(runs, "mnist")
    assert report.compute_seconds(runs) == pytest.approx(sum(json.loads(p.read_text())["train_seconds"]
                                                             for p, _ in shots))


def _record(acc, params, seed=42, qt=True):
    return {"test_accuracy": acc, "qt_params": params if qt else None, "cnn_params": 6690 if qt else params,
            "seed": seed, "epochs": 10, "train_seconds": 1.0, "device": "cpu"}


def write_run(root, dataset, grid, run, record, epochs=None, extra=(), blocks=None):
    """Write `record` as the finished run `run` of `grid` would record it: its command, dataset, epochs, history."""
    argv = {p.stem: a for p, a in commands(grid, dataset, root, epochs, extra=list(extra), blocks=blocks)}[run]
    args = spec_from_argv(argv)
    qt = record.get("qt_params") is not None
    epochs = args.epochs
    acc = record.get("test_accuracy", record.get("val_accuracy"))
    full = {"dataset": dataset, "model": "qt" if qt else "classical", "blocks": args.blocks if qt else None,
            "seed": args.seed, "epochs": epochs, "n_train": args.n_train or 60000, "n_test": args.n_test or 10000,
            "val_accuracy": None, "train_seconds": 1.0, "device": "cpu", "lr": args.lr or 1e-3,
            "history": {"epoch": list(range(1, epochs + 1)), "test_acc": [acc] * epochs,
                        "seconds": [1.0 / epochs] * epochs},
            "command": shlex.join(["python", "-m", "qt_helpers", *argv]), **record}
    full["seed"], full["epochs"] = args.seed, epochs
    path = Path(root) / dataset / grid / f"{run}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(full))
    return path


def write_tune(root, dataset="mnist", best=("qt-lr-cosine-lr3e-3", "cnn-budget-standardize-lr1e-3"), epochs=None,
               extra=(), values=None, blocks=None):
    """A finished tune grid: validation accuracy 0.9 for the `best` trials, 0.5 for the others (or `values`)."""
    for path, argv in commands("tune", dataset, root, epochs, extra=list(extra), blocks=blocks):
        qt = spec_from_argv(argv).model == "qt"
        acc = (values or {}).get(path.stem, 0.9 if path.stem in best else 0.5)
        write_run(root, dataset, "tune", path.stem, {"val_accuracy": acc, "test_accuracy": None,
                                                      "qt_params": 1497 if qt else None, "cnn_params": 1438},
                  epochs, extra, blocks)


def test_seeds_summary_is_mean_and_sample_std(tmp_path, cells):
    for seed, acc in zip(SEEDS, (0.94, 0.95, 0.96), strict=True):
        for run, r in ((f"qt-improved-seed{seed}", _record(acc, 1497, seed)),
                       (f"cnn-budget-seed{seed}", _record(acc + 0.02, 1438, seed, qt=False))):
            write_run(tmp_path, "mnist", "seeds", run, r)
    runs = report.load_runs(tmp_path)
    s = report.seeds_summary(runs, "mnist")
    assert s["QT improved"]["mean"] == pytest.approx(0.95)
    assert s["QT improved"]["std"] == pytest.approx(0.01)
    assert s["classical CNN, QT's budget"]["params"] == 1438
    assert "classical CNN" not in s
    assert "95.00 ± 1.00 %" in report.seeds_table(runs, "mnist")
    assert report.goals(runs) == [
        ("mnist ≥ 95 % at ≤ 1,497 parameters", "QT improved, 10 epochs, 3 seeds", pytest.approx(0.95), True,
         "met"),
        ("fashion_mnist ≥ 84 % at ≤ 1,497 parameters", "no QT run", None, None, "not run"),
        ("cifar10 ≥ 65 % at ≤ 27,951 parameters", "no QT run", None, None, "not run")]
    assert ("mnist ≥ 95 % at ≤ 1,497 parameters", "QT improved, 10 epochs, 3 seeds", "95.00 %", "met") in cells(
        report.goals_table(runs))
    assert report.against_budget(runs) == [("mnist", "QT improved against the budget CNN (one setting each, not tuned "
                                            "on this dataset)", pytest.approx(-0.02), 0, 3, False)]
    assert any(row[1:] == ("no QT run", "–", "not run") for row in cells(report.goals_table(runs)))
    assert "Block sweep" not in report.findings(runs, "mnist")  # no block sweep here
    assert "the budget CNN (1,438) 97.00 ± 1.00 %, 2.00 points above QT" in report.findings(runs, "mnist")
    assert "QT is ahead on 0 of 3 seeds (differences -2.00, -2.00, -2.00 points)" in report.findings(runs, "mnist")
    assert ("mnist", "seeds", "6", "0", "0.00", "CPU") in cells(report.compute_table(runs))


def test_missing_results_folder_says_what_to_run(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"python -m qtbook\.experiments"):
        report.load_runs(tmp_path / "nothing")


def test_classical_only_dataset_reports_its_budget_gap(tmp_path):
    for seed, acc in zip(SEEDS, (0.60, 0.61, 0.62), strict=True):
        for run, r in ((f"cnn-seed{seed}", _record(acc, 285226, seed, qt=False)),
                       (f"cnn-budget-seed{seed}", _record(acc - 0.05, 27649, seed, qt=False))):
            write_run(tmp_path, "cifar10", "seeds", run, r, epochs=10)
    runs = report.load_runs(tmp_path)
    text = report.findings(runs, "cifar10")
    assert "from 285,226 to 27,649 parameters costs 5.00 points (61.00 against 56.00 %" in text
    assert "no QT run yet" in text
    assert "best budget CNN (56.00 %, 10 epochs) is 7.10 points below the published QT figure at L = 95" in text
    assert report.goals(runs)[-1] == ("cifar10 ≥ 65 % at ≤ 27,951 parameters", "no QT run", None, None, "not run")
    fig = report.plot_blocks(runs, "cifar10")  # no blocks grid: only the published QT curve
    assert [t.get_text() for t in fig.axes[0].get_legend().get_texts()] == ["QT reference (published)"]


def test_goals_are_judged_on_three_seeds_within_the_budget(tmp_path):
    def write(seed, params):
        write_run(tmp_path, "cifar10", "seeds", f"qt-lr-cosine-seed{seed}", _record(0.70, params, seed), epochs=10)

    write(42, 27961)  # one seed: reported, not judged
    row = report.goals(report.load_runs(tmp_path))[-1]
    assert row[1:] == ("QT lr-cosine, 10 epochs, 1 seed", pytest.approx(0.70), None, "not judged: 1 of 3 seeds")
    for seed in SEEDS:  # three seeds above 65 %, but 10 parameters over the budget
        write(seed, 27961)
    assert report.goals(report.load_runs(tmp_path))[-1][3:] == (False, "missed: 27,961 parameters")
    for seed in SEEDS:  # and below the accuracy goal: both reasons
        write_run(tmp_path, "cifar10", "seeds", f"qt-lr-cosine-seed{seed}", _record(0.61, 27961, seed), epochs=10)
    assert report.goals(report.load_runs(tmp_path))[-1][3:] == (False, "missed: below the goal and 27,961 parameters")


def test_every_recorded_run_is_a_finished_record_of_its_grid():
    """Each JSON in results/runs is a whole run (its command, every epoch) whose arguments are those its grid
    would run at that name: a broken or misplaced file would show wrong numbers in chapter 7."""
    from qtbook.experiments import placement_problems

    root = Path(__file__).resolve().parents[1] / "results" / "runs"
    paths = sorted(root.glob("*/*/*.json"))
    assert paths
    for path in paths:
        assert placement_problems(path, root) == [], path
        record = json.loads(path.read_text())
        assert "/work/" not in json.dumps({k: v for k, v in record.items() if k != "history"}), path  # portable
        assert set(record["data_source"]) == {"name", "sha256"}, path


def test_tune_gives_qt_and_the_budget_cnn_equal_trials_and_protocol_trains_the_choices(tmp_path):
    cmds = commands("tune", "mnist", tmp_path)
    args = {p.stem: spec_from_argv(a) for p, a in cmds}
    qt = [a for a in args.values() if a.model == "qt"]
    cnn = [a for a in args.values() if a.model == "classical"]
    assert len(qt) == len(cnn) == 6
    assert {a.lr for a in qt} == {1e-3, 3e-3, 1e-2}
    assert all(a.budget == 1497 and a.schedule == "cosine" for a in cnn)
    assert sum(bool(a.standardize) for a in cnn) == 3
    assert all(a.val_fraction == 0.1 and a.test == "never" and a.epochs == 10 for a in args.values())
    with pytest.raises(ValueError, match="run the tune grid first"):
        commands("protocol", "mnist", tmp_path)
    write_tune(tmp_path)  # validation accuracies as a finished tune grid would record them
    protocol = {p.stem: spec_from_argv(a) for p, a in commands("protocol", "mnist", tmp_path)}
    assert sorted(protocol) == sorted(f"{m}-seed{s}" for m in ("qt-chosen", "cnn-budget") for s in SEEDS)
    q, c = protocol["qt-chosen-seed43"], protocol["cnn-budget-seed44"]
    assert (q.lr, q.activation, q.seed, q.test, q.val_fraction) == (3e-3, None, 43, "end", 0.1)
    assert (c.lr, c.standardize, c.budget, c.seed, c.test) == (1e-3, True, 1497, 44, "end")
    assert "Chosen: QT `qt-lr-cosine-lr3e-3`" in report.tune_table(report.load_runs(tmp_path), "mnist")
    next(p for p, _ in cmds if p.stem == "qt-improved-lr1e-2").unlink()  # a QT trial missing: the CNN's alone
    assert sorted(p.stem for p, _ in commands("protocol", "mnist", tmp_path)) == [f"cnn-budget-seed{s}" for s in SEEDS]
    table = report.tune_table(report.load_runs(tmp_path), "mnist")  # and the report chooses as the grid does
    assert table.endswith("Chosen: the budget CNN `cnn-budget-standardize-lr1e-3` (90.00 % on validation); "
                          "QT not chosen yet (5 of 6 trials run).")
    assert "**qt-" not in table


def test_a_cut_off_grid_run_resumes_from_its_checkpoint(pack_dir, tmp_path, monkeypatch):
    from qt_helpers import cli
    from qt_helpers import run as trainer  # where `run` calls `fit`

    out = tmp_path / "runs"
    small = ["--blocks", "2", "--data-dir", str(pack_dir), "--batch-size", "100"]
    [(path, argv)] = commands("seeds", "mnist", out, epochs=2, extra=small, runs=["qt-improved-seed42"])
    ckpt = path.with_suffix(".pt")

    def cut_after_one_epoch(*a, **kw):  # the session ends during epoch 2
        def stop(epoch, _step, _loss):
            if epoch == 1:
                raise KeyboardInterrupt
        return fit(*a, **kw, on_step=stop)

    fit = trainer.fit
    monkeypatch.setattr(trainer, "fit", cut_after_one_epoch)
    path.parent.mkdir(parents=True)
    assert cli.main([*argv, "--checkpoint", str(ckpt)]) == 130  # Ctrl-C's exit code, after one line
    assert ckpt.exists()
    assert not path.exists()
    assert "test" not in torch.load(ckpt, weights_only=True)["identity"]  # the default, as before --test existed
    assert run_commands([(path, argv)], out) == []  # resumes epoch 2 in a worker process
    log = path.with_suffix(".log").read_text()
    assert "epoch 1/2" not in log
    assert "epoch 2/2" in log
    record = json.loads(path.read_text())
    assert len(record["history"]["epoch"]) == 2
    assert record["resumed_after_epoch"] == 1
    assert not ckpt.exists()
    assert report.run_seconds(record) == sum(record["history"]["seconds"])  # both sittings, not the last alone


def test_where_the_protocol_grid_ran_its_choice_is_judged_and_test_picked_recipes_are_not(tmp_path, cells):
    write_tune(tmp_path)
    for grid, qt, accs in (("seeds", "qt-improved", (0.94, 0.95, 0.96)), ("protocol", "qt-chosen", (0.97,) * 3)):
        for seed, acc in zip(SEEDS, accs, strict=True):
            for run, r in ((f"{qt}-seed{seed}", _record(acc, 1497, seed)),
                           (f"cnn-budget-seed{seed}", _record(0.96, 1438, seed, qt=False))):
                write_run(tmp_path, "mnist", grid, run, r)
    runs = report.load_runs(tmp_path)
    mnist = [row for row in report.goals(runs) if row[0].startswith("mnist ")]
    assert [(m, ok, v) for _, m, _, ok, v in mnist] == [
        ("QT chosen on validation, 10 epochs, 3 seeds", True, "met"),
        ("QT improved, 10 epochs, 3 seeds", None, "not judged: recipe picked on the test set")]
    [(dataset, comparison, gap, ahead, n, met)] = report.against_budget(runs)
    assert (dataset, ahead, n, met) == ("mnist", 3, 3, True)
    assert gap == pytest.approx(0.01)
    assert "both chosen on validation" in comparison
    assert any(row[:2] == ("mnist", comparison) for row in cells(report.against_budget_table(runs)))


def test_shots_are_averaged_over_seeds_and_a_dip_is_put_beside_the_spread(tmp_path, cells):
    accs = {None: (0.90, 0.92, 0.94), 2**13: (0.50, 0.52, 0.54), 2**15: (0.80, 0.80, 0.80),
            2**17: (0.86, 0.88, 0.90), 2**19: (0.85, 0.87, 0.89)}
    for S, values in accs.items():
        for seed, acc in zip(SEEDS, values, strict=True):
            name = ("exact" if S is None else f"shots-{S}") + ("" if seed == 42 else f"-seed{seed}")
            write_run(tmp_path, "mnist", "shots", name, {**_record(acc, 1497, seed), "qubits": 13})
    runs = report.load_runs(tmp_path)
    assert report.shots_rows(runs, "mnist")[-1] == (None, [0.90, 0.92, 0.94])
    assert ("2^19 = 524,288", "64", "87.00 ± 2.00 %", "85.00, 87.00, 89.00", "3") in cells(
        report.shots_table(runs, "mnist"))
    text = report.findings(runs, "mnist")
    assert "**Shots** (3 seeds): with S = 524,288 shots QT reaches 87.00 %, 5.00 points below exact" in text
    assert "S = 524,288 is 1.00 points below S = 131,072 (std over seeds 2.00 and 2.00)" in text
    assert "rise with S at every step" not in text


# ------------------------------------------------------------------------ records are checked by their content
def test_the_report_leaves_out_and_names_records_that_do_not_fit_where_they_sit(tmp_path, capsys):
    """A FashionMNIST record copied into mnist/seeds, a 1-epoch run among 10-epoch ones, a diverged run: never
    mixed into a table (the MNIST QT mean stays that of its own three seeds), each named."""
    for seed, acc in zip(SEEDS, (0.95, 0.96, 0.97), strict=True):
        write_run(tmp_path, "mnist", "seeds", f"qt-improved-seed{seed}", _record(acc, 1497, seed))
    before = report.seeds_summary(report.load_runs(tmp_path), "mnist")["QT improved"]["mean"]
    foreign = write_run(tmp_path, "fashion_mnist", "seeds", "qt-improved-seed43", _record(0.80, 1497, 43))
    target = tmp_path / "mnist" / "seeds" / "qt-improved-seed43.json"
    target.write_text(foreign.read_text())  # copied over the MNIST run
    write_run(tmp_path, "mnist", "seeds", "qt-improved-seed44", _record(0.50, 1497, 44), epochs=1)  # another scale
    record = write_run(tmp_path, "mnist", "seeds", "qt-lr-cosine-seed42", _record(0.10, 1497))
    record.write_text(json.dumps({**json.loads(record.read_text()), "diverged": True, "test_accuracy": None}))
    capsys.readouterr()
    runs = report.load_runs(tmp_path)
    err = capsys.readouterr().err
    assert report.seeds_summary(runs, "mnist")["QT improved"]["accs"] == [0.95]  # only the run that fits
    assert "QT lr-cosine" not in report.seeds_summary(runs, "mnist")
    assert before == pytest.approx(0.96)
    assert "mnist/seeds/qt-improved-seed43.json: a fashion_mnist run in the mnist folder" in err
    assert "mnist/seeds/qt-improved-seed44.json: 1 epoch, full data, while the seeds grid's other runs are 10 " \
           "epochs, full data" in err
    assert "mnist/seeds/qt-lr-cosine-seed42.json: diverged" in err


def test_the_protocol_plan_comes_only_from_fitting_tune_trials(tmp_path):
    small = ["--n-train", "256", "--n-test", "256"]
    write_tune(tmp_path, epochs=1, extra=small)  # a 1-epoch, 256-image tune grid
    with pytest.raises(ValueError, match="does not fit: made by another command") as e:  # a full-scale plan: refused
        commands("protocol", "mnist", tmp_path)
    assert "does not fit: made by another command: epochs 1 (this grid: 10), n_test 256 (this grid: None), " \
           "n_train 256 (this grid: None)" in str(e.value)
    assert "rerun the tune grid at this scale" in str(e.value)
    assert len(commands("protocol", "mnist", tmp_path, epochs=1, extra=small)) == 6  # at its own scale

    write_tune(tmp_path / "nan", values={"qt-improved-lr1e-2": float("nan")})
    with pytest.raises(ValueError, match=r"qt-improved-lr1e-2\.json does not fit: val_accuracy is nan"):
        commands("protocol", "mnist", tmp_path / "nan")

    write_tune(tmp_path / "div", values={"qt-improved-lr1e-2": 0.99})  # the best trial, but it diverged
    path = tmp_path / "div" / "mnist" / "tune" / "qt-improved-lr1e-2.json"
    path.write_text(json.dumps({**json.loads(path.read_text()), "diverged": True, "val_accuracy": None}))
    qt = {p.stem: spec_from_argv(a) for p, a in commands("protocol", "mnist", tmp_path / "div")}
    assert qt["qt-chosen-seed42"].lr == 3e-3
    assert qt["qt-chosen-seed42"].activation is None  # the best that ran


def test_a_stuck_grid_heals_and_a_resume_that_cannot_work_says_why(pack_dir, tmp_path, capsys):
    """A JSON write that failed (a truncated record beside the checkpoint) is redone from the checkpoint; a
    checkpoint of other arguments fails with its reason on the console, not only in the log."""
    out = tmp_path / "runs"
    small = ["--blocks", "2", "--data-dir", str(pack_dir)]
    [(path, _)] = commands("seeds", "mnist", out, epochs=1, extra=small, runs=["cnn-seed42"])
    ckpt = path.with_suffix(".pt")
    path.parent.mkdir(parents=True)
    path.write_text('{"dataset": "mnist", "model": "classical", "hist')  # the disk filled up while writing it
    [(_, two)] = commands("seeds", "mnist", out, epochs=2, extra=small, runs=["cnn-seed42"])
    no_json = two[:two.index("--json")] + two[two.index("--json") + 2:]
    assert main_train([*no_json, "--checkpoint", str(ckpt), "--epochs", "1"]) == 0  # an earlier run's checkpoint
    capsys.readouterr()
    assert run_commands([(path, two)], out) == [path]  # 2 epochs from a checkpoint made for 1
    printed = capsys.readouterr().out
    assert f"not a finished run, will be redone: {path}" in printed
    assert f"FAILED (exit 2): checkpoint {ckpt} is a finished 1-epoch run: add --extend" in printed
    assert "delete this one to start over" in printed
    ckpt.unlink()  # as the message says
    assert run_commands([(path, two)], out) == []  # healed: the broken JSON is replaced, not "already exists"
    assert json.loads(path.read_text())["history"]["epoch"] == [1, 2]


def main_train(argv):
    from qt_helpers.cli import main

    return main(argv)


@pytest.mark.parametrize("executor", ["submitit-local", "local"])
def test_a_grid_runs_through_the_executor(executor, tmp_path, capsys):
    """A real tiny grid (2 runs of MNIST's seeds grid) through qtbook.executor: finished records that reproduce
    themselves, their training output in their logs; submitit's jobs keep their files in <out>/.submitit."""
    from qt_helpers.records import record_problems
    from qtbook.experiments import own_expect

    args = ["seeds", "--runs", "cnn-seed4[23]", "--n-train", "256", "--n-test", "256", "--epochs", "1",
            "--jobs", "2", "--out", str(tmp_path), "--executor", executor]
    assert grids_main(args) == 0
    printed = capsys.readouterr().out
    paths = [tmp_path / "mnist" / "seeds" / f"cnn-seed{s}.json" for s in (42, 43)]
    assert "2 runs to do" in printed
    assert all(f"done: {p}" in printed for p in paths)
    for path in paths:
        record = json.loads(path.read_text())
        argv = shlex.split(record["command"])[3:]
        assert record["command"].startswith("python -m qt_helpers train ")  # the command that reproduces it
        assert spec_from_argv(record["command"].split()[3:]).key() == record["key"]
        assert record_problems(record, own_expect(argv)) == []
        assert record["n_train"] == 256
        log = path.with_suffix(".log").read_text()
        assert log.startswith("=== ")
        assert "epoch 1/1: train loss" in log
        assert f"wrote {path}" in log
    jobs = sorted((tmp_path / ".submitit").glob("*_0_log.out"))
    if executor == "submitit-local":
        assert len(jobs) == 2
        assert all("Job completed successfully" in j.read_text() for j in jobs)
        assert all(f"as job {j.name.split('_')[0]} (submitit's log: {j})" in printed for j in jobs)
    else:
        assert jobs == []
    assert grids_main(args) == 0
    assert "0 runs to do" in capsys.readouterr().out  # done: nothing runs again


def test_slurm_jobs_ask_for_the_partition_time_cpus_and_memory(tmp_path, monkeypatch, capsys):
    """Without a cluster: `--executor slurm` says so in one line; with one (sbatch found), each run's job asks for
    the grid's partition, minutes, its threads as CPUs and the memory."""
    import shutil

    from qtbook.executor import make_executor

    args = ["seeds", "--runs", "cnn-seed42", "--out", str(tmp_path), "--executor", "slurm"]
    monkeypatch.setattr(shutil, "which", lambda _name: None)
    assert grids_main([*args, "--slurm-partition", "gpu"]) == 2
    assert "needs a SLURM cluster (no sbatch on this machine)" in capsys.readouterr().err
    assert grids_main(["seeds", "--slurm-partition", "gpu", "--dry-run"]) == 2
    assert "--slurm-partition sets SLURM jobs; add --executor slurm" in capsys.readouterr().err
    monkeypatch.setattr(shutil, "which", lambda name: f"/usr/bin/{name}")  # a login node
    assert grids_main(args) == 2
    assert "needs --slurm-partition" in capsys.readouterr().err
    ex = make_executor("slurm", 8, tmp_path / ".submitit", threads=4, partition="gpu", time_min=120, mem_gb=8)
    script = ex.executor._executor._make_submission_file_text("python -m submitit.core._submit", "uid")
    for line in ("#SBATCH --partition=gpu", "#SBATCH --time=120", "#SBATCH --cpus-per-task=4", "#SBATCH --mem=8GB",
                 "#SBATCH --ntasks-per-node=1", "#SBATCH --nodes=1"):
        assert line in script, script


def test_a_preempted_submitit_job_is_requeued_and_resumes_from_its_checkpoint(pack_dir, tmp_path):
    """SLURM's preemption signal (USR2, here sent to submitit's local job) makes submitit requeue the run with
    `--resume`: it continues after its last saved epoch and its record counts every epoch once."""
    import os
    import signal
    import time

    from qtbook.executor import make_executor, train_job

    out = tmp_path / "runs"
    small = ["--blocks", "2", "--data-dir", str(pack_dir), "--batch-size", "100"]
    [(path, argv)] = commands("seeds", "mnist", out, epochs=30, extra=small, runs=["qt-improved-seed42"])
    ckpt, log = path.with_suffix(".pt"), path.with_suffix(".log")
    ex = make_executor("submitit-local", 1, tmp_path / ".submitit")
    future = ex.submit(train_job, [*argv, "--checkpoint", str(ckpt), "--overwrite"], log, 1)
    def saved_epochs():  # the log reports an epoch just before its checkpoint is written: read the checkpoint
        try:
            return len(torch.load(ckpt, weights_only=True)["history"]["epoch"])
        except (FileNotFoundError, EOFError, RuntimeError):
            return 0

    for _ in range(1200):  # until two epochs are saved
        if saved_epochs() >= 2:
            break
        time.sleep(0.1)
    pid = int(log.read_text().split("(pid ", 1)[1].split(")", 1)[0])
    os.kill(pid, signal.SIGUSR2)  # what SLURM sends (through submitit's --signal) before preempting a job
    assert future.result() == 0
    text = log.read_text()
    assert text.count("=== ") == 2
    assert " --resume" in text.split("=== ")[2]  # the requeued job's command
    submitit_log = text + (future.job.stdout() or "") + (future.job.stderr() or "")
    assert "this job is preempted" in submitit_log
    assert "Requeued job" in submitit_log
    record = json.loads(path.read_text())
    assert record["resumed_after_epoch"] >= 2
    assert record["history"]["epoch"] == list(range(1, 31))
