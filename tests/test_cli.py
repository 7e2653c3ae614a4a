"""`python -m qt_helpers train`: the table, the JSON results and errors for bad input."""
import json
import subprocess
import sys

import pytest

from qt_helpers.cli import main


def test_train_qt_writes_results(pack_dir, capsys):
    out = pack_dir / "results.json"
    main(["train", "--dataset", "mnist", "--model", "qt", "--blocks", "2", "--epochs", "2", "--batch-size", "50",
          "--lr", "0.01", "--data-dir", str(pack_dir), "--json", str(out), "--no-progress"])
    printed = capsys.readouterr().out
    for row in ("CNN parameters (generated)", "6,690", "qubits", "QNN angles", "156", "mapping-model parameters",
                "249", "QT trainable parameters", "405", "QT / CNN", "test accuracy"):
        assert row in printed
    r = json.loads(out.read_text())
    assert {"dataset", "model", "backend", "blocks", "qubits", "cnn_params", "qt_params", "test_accuracy",
            "train_seconds", "device"} <= r.keys()
    assert (r["dataset"], r["model"], r["backend"], r["blocks"], r["qubits"]) == ("mnist", "qt", "native", 2, 13)
    assert (r["cnn_params"], r["qt_params"], r["n_train"], r["n_test"]) == (6690, 405, 200, 100)
    assert 0 <= r["test_accuracy"] <= 1
    assert len(r["history"]["epoch"]) == 2


def test_train_classical_learns_the_toy_pack(pack_dir, tmp_path):
    out = tmp_path / "c.json"
    main(["train", "--dataset", "mnist", "--model", "classical", "--epochs", "3", "--batch-size", "20",
          "--data-dir", str(pack_dir), "--json", str(out), "--no-progress", "--export", str(tmp_path / "w.pt")])
    r = json.loads(out.read_text())
    assert r["cnn_params"] == 6690
    assert r["qt_params"] is None
    assert r["test_accuracy"] > 0.5  # the toy classes are a bright band: easy
    assert (tmp_path / "w.pt").stat().st_size > 6690 * 4


@pytest.mark.parametrize(("args", "message"), [
    (["--dataset", "svhn"], "mnist, fashion_mnist, cifar10"),
    (["--backend", "qiskit"], "native, torchquantum, pennylane"),
    (["--model", "rnn"], "qt, classical"),
    (["--ansatz", "hea"], "u3cu3, ry_cnot, ry_rz_cz"),
    (["--qubits", "12"], "12 qubits give 2^12 = 4,096 basis states, fewer than the CNN's 6,690 weights"),
])
def test_bad_input_exits_with_the_valid_choices(pack_dir, args, message, capsys):
    assert main(["train", "--data-dir", str(pack_dir), "--no-progress", "--epochs", "1", *args]) == 2
    assert message in capsys.readouterr().err


def test_module_entry_point_prints_help():
    r = subprocess.run([sys.executable, "-m", "qt_helpers", "train", "--help"], capture_output=True, text=True,
                       check=False)
    assert r.returncode == 0
    assert "--n-train" in r.stdout
    assert "--backend" in r.stdout


def test_recipe_options_are_recorded_with_the_command_that_reproduces_the_run(pack_dir):
    out = pack_dir / "r.json"
    argv = ["train", "--blocks", "2", "--epochs", "2", "--batch-size", "50", "--activation", "relu", "--lr", "3e-3",
            "--schedule", "cosine", "--shots", "8192", "--data-dir", str(pack_dir), "--json", str(out),
            "--no-progress"]
    main(argv)
    r = json.loads(out.read_text())
    assert r["recipe"] == {"activation": "relu", "trainable_transform": False, "standardize": False, "init": None,
                           "shots": 8192, "relu": False, "schedule": "cosine", "budget": None}
    assert r["command"].split()[3:] == argv
    assert r["history"]["lr"] == pytest.approx([1.5e-3, 0.0], abs=1e-12)  # cosine: half way, then 0


def test_budget_gives_a_narrower_classical_cnn(pack_dir):
    out = pack_dir / "b.json"
    main(["train", "--model", "classical", "--budget", "1497", "--epochs", "1", "--data-dir", str(pack_dir),
          "--json", str(out), "--no-progress"])
    assert 1300 < json.loads(out.read_text())["cnn_params"] <= 1497


@pytest.mark.parametrize(("args", "message"), [
    (["--budget", "1000"], "--budget is for --model classical"),
    (["--model", "classical", "--budget", "10"], "no mnist CNN of this shape fits in 10 parameters"),
    (["--shots", "0"], "--shots must be a positive number"),
    (["--schedule", "step"], "plateau, cosine"),
    (["--init", "zeros"], "uniform, small"),
])
def test_bad_recipe_options_are_clear_errors(pack_dir, args, message, capsys):
    assert main(["train", "--data-dir", str(pack_dir), "--no-progress", "--epochs", "1", *args]) == 2
    assert message in capsys.readouterr().err


def test_validation_accuracy_is_recorded_every_epoch(pack_dir):
    out = pack_dir / "v.json"
    main(["train", "--model", "classical", "--epochs", "2", "--batch-size", "50", "--val-fraction", "0.1",
          "--data-dir", str(pack_dir), "--json", str(out), "--no-progress"])
    r = json.loads(out.read_text())
    assert (r["n_train"], r["n_val"], r["n_test"]) == (180, 20, 100)
    assert len(r["history"]["val_acc"]) == 2
    assert r["val_accuracy"] == r["history"]["val_acc"][-1]
    assert 0 <= r["val_accuracy"] <= 1


@pytest.mark.parametrize("when", ["never", "end"])
def test_the_test_set_is_read_only_when_asked(pack_dir, when):
    out = pack_dir / "t.json"
    main(["train", "--model", "classical", "--epochs", "2", "--batch-size", "50", "--val-fraction", "0.1",
          "--test", when, "--data-dir", str(pack_dir), "--json", str(out), "--no-progress"])
    r = json.loads(out.read_text())
    assert r["history"]["test_acc"] == [None, None]  # never during training
    assert 0 <= r["val_accuracy"] <= 1
    assert (r["test_accuracy"] is None) == (when == "never")
    if when == "end":
        assert 0 <= r["test_accuracy"] <= 1


# --- help, recipes against explicit flags, the console script --------------------------------------------------

def test_help_names_every_option_s_choices_and_default(capsys):
    from qt_helpers.cli import build_parser

    with pytest.raises(SystemExit):
        main(["train", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    for shown in ("--recipe {reference,lr-cosine,improved,classical,tuned}", "--dataset {mnist,fashion_mnist,cifar10}",
                  "--schedule {plateau,cosine}", "--backend {native,torchquantum,pennylane}",
                  "training epochs", "(default: 1)", "seed of the model's initialisation", "(default: 42)",
                  "(default: the recipe's, else QT 1e-4, classical 1e-3)"):
        assert shown in text
    train = next(a for a in build_parser()._actions if a.dest == "command").choices["train"]
    for action in train._actions:
        assert action.help, f"{action.option_strings} has no help text"


def test_qt_train_script_is_declared_and_names_itself(capsys):
    import tomllib
    from pathlib import Path

    from qt_helpers.cli import train_main

    scripts = tomllib.loads((Path(__file__).parents[1] / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts["qt-train"] == "qt_helpers.cli:train_main"
    with pytest.raises(SystemExit) as e:
        train_main(["--help"])
    assert e.value.code == 0
    assert capsys.readouterr().out.startswith("usage: qt-train [-h]")
    assert train_main(["--recipe", "best"]) == 2
    assert "unknown recipe 'best'" in capsys.readouterr().err


@pytest.mark.parametrize(("flags", "resolved"), [
    (["--recipe", "improved", "--schedule", "plateau"],
     {"model": "qt", "activation": "relu", "lr": 3e-3, "schedule": "plateau", "standardize": False}),
    (["--recipe", "improved", "--lr", "1e-3", "--activation", "none"],
     {"activation": "none", "lr": 1e-3, "schedule": "cosine"}),
    (["--recipe", "improved", "--dataset", "cifar10", "--no-standardize"], {"standardize": False, "lr": 3e-3}),
    (["--recipe", "improved", "--dataset", "cifar10"], {"standardize": True}),
    (["--recipe", "classical"], {"model": "classical", "lr": 1e-3, "schedule": "cosine", "activation": None}),
    (["--recipe", "tuned"], {"model": "qt", "activation": None, "lr": 1e-2, "schedule": "cosine"}),
    ([], {"model": "qt", "activation": None, "lr": 1e-4, "schedule": "plateau", "standardize": False}),
    (["--model", "classical"], {"lr": 1e-3, "schedule": "plateau"}),
])
def test_explicit_flags_beat_the_recipe(flags, resolved):
    from qt_helpers.cli import spec_from_argv

    spec = spec_from_argv(["train", *flags])
    spec.check()
    assert {k: getattr(spec, k) for k in resolved} == resolved


@pytest.mark.parametrize(("flags", "message"), [
    (["--recipe", "classical", "--model", "qt"], "--recipe classical trains the classical CNN, not --model qt"),
    (["--recipe", "improved", "--model", "classical"], "--recipe improved trains the QT model, not --model classical"),
    (["--recipe", "classical", "--activation", "relu"], "QT options; drop them for --model classical"),
])
def test_contradicting_a_recipe_s_model_is_one_line_error(pack_dir, flags, message, capsys):
    assert main(["train", "--data-dir", str(pack_dir), "--no-progress", *flags]) == 2
    err = capsys.readouterr().err
    assert message in err
    assert err.count("\n") == 1


def test_the_json_records_the_settings_that_ran(pack_dir):
    out = pack_dir / "s.json"
    argv = ["train", "--recipe", "improved", "--schedule", "plateau", "--blocks", "2", "--batch-size", "50",
            "--data-dir", str(pack_dir), "--json", str(out), "--no-progress"]
    main(argv)
    r = json.loads(out.read_text())
    assert r["recipe_name"] == "improved"
    assert r["command"].split()[3:] == argv
    assert {k: r["settings"][k] for k in ("activation", "lr", "schedule", "model", "blocks", "epochs")} == {
        "activation": "relu", "lr": 3e-3, "schedule": "plateau", "model": "qt", "blocks": 2, "epochs": 1}
    assert r["history"]["lr"] == [3e-3]  # plateau: unchanged after one epoch (cosine would have reached 0)


# --- Ctrl-C, resuming and extending a run ----------------------------------------------------------------------

def interrupt_in_epoch(monkeypatch, epoch):
    """Make the CLI's `fit` raise KeyboardInterrupt (as Ctrl-C does) at the first step of `epoch` (0-based)."""
    import qt_helpers.run as cli  # where `run` calls `fit`

    real = cli.fit

    def fit(*a, **kw):
        def on_step(e, _step, _loss):
            if e == epoch:
                raise KeyboardInterrupt
        return real(*a, **{**kw, "on_step": on_step})
    monkeypatch.setattr(cli, "fit", fit)


def test_ctrl_c_ends_in_one_line_that_continues_the_run(pack_dir, monkeypatch, capsys):
    import shlex

    out, ckpt = pack_dir / "i.json", pack_dir / "i.pt"
    base = ["train", "--blocks", "2", "--epochs", "3", "--batch-size", "50", "--data-dir", str(pack_dir),
            "--no-progress", "--json", str(out)]
    interrupt_in_epoch(monkeypatch, 1)
    assert main([*base, "--checkpoint", str(ckpt)]) == 130
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "Traceback" not in err
    assert err.startswith(f"interrupted: 1 of 3 epochs are saved in {ckpt}; continue with: python -m qt_helpers train")
    again = shlex.split(err.split("continue with: ")[1])
    assert again[:3] == ["python", "-m", "qt_helpers"]
    assert again[-1] == "--resume"
    assert main([*base, "--checkpoint", str(ckpt), "--epochs", "5", "--resume"]) == 2  # unfinished: not extended
    assert "holds 1 of its 3 epochs: finish it first (--epochs 3 --resume)" in capsys.readouterr().err
    monkeypatch.undo()
    assert main(again[3:]) == 0
    r = json.loads(out.read_text())
    assert r["resumed_after_epoch"] == 1
    assert r["history"]["epoch"] == [1, 2, 3]


def test_ctrl_c_without_a_checkpoint_says_nothing_was_saved(pack_dir, monkeypatch, capsys):
    interrupt_in_epoch(monkeypatch, 0)
    assert main(["train", "--blocks", "2", "--data-dir", str(pack_dir), "--no-progress"]) == 130
    assert capsys.readouterr().err == ("interrupted: nothing was saved; add --checkpoint FILE to a run to make it "
                                       "resumable\n")


def test_a_finished_run_is_extended_only_when_asked(pack_dir, capsys):
    out, ckpt = pack_dir / "e.json", pack_dir / "e.pt"
    base = ["train", "--blocks", "2", "--batch-size", "50", "--lr", "0.01", "--schedule", "cosine",
            "--data-dir", str(pack_dir), "--no-progress", "--checkpoint", str(ckpt), "--json", str(out)]
    assert main([*base, "--epochs", "2"]) == 0
    assert main([*base, "--epochs", "1", "--resume", "--overwrite"]) == 2
    err = capsys.readouterr().err
    assert f"checkpoint {ckpt} is a 2-epoch run (2 done); --epochs 1 cannot shorten it" in err
    assert err.count("epochs: checkpoint") == 0
    assert main([*base, "--epochs", "4", "--resume", "--overwrite"]) == 2  # not without --extend
    assert "is a finished 2-epoch run: add --extend to continue it to 4 epochs" in capsys.readouterr().err
    assert main([*base, "--epochs", "4", "--resume", "--extend", "--overwrite"]) == 0
    assert "extending" in capsys.readouterr().out
    r = json.loads(out.read_text())
    assert r["extended_from_epochs"] == 2
    assert r["epochs"] == 4
    assert r["history"]["epoch"] == [1, 2, 3, 4]
    # the cosine decay goes on from the lr a 4-epoch run has after epoch 2 (5e-3), to 0 at epoch 4
    assert r["history"]["lr"] == pytest.approx([5e-3, 0.0, 2.5e-3, 0.0], abs=1e-12)
    assert main([*base, "--epochs", "4", "--resume", "--overwrite"]) == 0  # the extended run resumes as itself


def test_extending_a_one_epoch_cosine_run_matches_a_two_epoch_run(pack_dir):
    def run(name, *flags):
        out = pack_dir / f"{name}.json"
        assert main(["train", "--blocks", "2", "--batch-size", "50", "--recipe", "tuned", "--data-dir", str(pack_dir),
                     "--no-progress", "--json", str(out), "--overwrite", *flags]) == 0
        return json.loads(out.read_text())["history"]
    ckpt = str(pack_dir / "x.pt")
    run("one", "--epochs", "1", "--checkpoint", ckpt)
    extended = run("ext", "--epochs", "2", "--checkpoint", ckpt, "--resume", "--extend")
    fresh = run("two", "--epochs", "2")
    assert extended["train_loss"] == pytest.approx(fresh["train_loss"], rel=1e-5)
    assert extended["test_acc"] == fresh["test_acc"]


def test_tensorboard_curves_or_one_line_saying_how_to_install(pack_dir, tmp_path, capsys):
    import importlib.util

    board = tmp_path / "board"
    rc = main(["train", "--blocks", "2", "--epochs", "2", "--batch-size", "50", "--data-dir", str(pack_dir),
               "--no-progress", "--tensorboard", str(board)])
    if importlib.util.find_spec("tensorboard") is None:
        assert rc == 2
        err = capsys.readouterr().err
        assert err == "error: --tensorboard needs the tensorboard package: pip install tensorboard\n"
        assert not board.exists()
    else:
        assert rc == 0
        assert list(board.glob("events.out.tfevents.*"))


# --- the package's tools outside the checkout --------------------------------------------------------------------

def test_report_takes_runs_and_says_when_they_are_missing(tmp_path):
    from pathlib import Path

    runs = Path(__file__).parents[1] / "results" / "runs"
    cmd = [sys.executable, "-m", "qtbook.report"]
    r = subprocess.run(cmd, cwd=tmp_path, capture_output=True, check=False, text=True)
    assert r.returncode == 2
    assert r.stderr.count("\n") == 1
    assert "pass --runs DIR" in r.stderr
    r = subprocess.run([*cmd, "--runs", str(runs)], cwd=tmp_path, capture_output=True, check=False, text=True)
    assert r.returncode == 0
    assert r.stdout.startswith("## ")
    r = subprocess.run([sys.executable, "-m", "qtbook.results_page", "x.ipynb", "--out", "r.md"],
                       cwd=tmp_path, capture_output=True, check=False, text=True)
    assert r.returncode == 2
    assert r.stderr == ("error: book/results.md does not exist; run this in the repository's "
                                              "folder, or pass the paths\n")
