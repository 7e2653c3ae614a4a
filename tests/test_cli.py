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
    assert 0 <= r["test_accuracy"] <= 1 and len(r["history"]["epoch"]) == 2


def test_train_classical_learns_the_toy_pack(pack_dir, tmp_path):
    out = tmp_path / "c.json"
    main(["train", "--dataset", "mnist", "--model", "classical", "--epochs", "3", "--batch-size", "20",
          "--data-dir", str(pack_dir), "--json", str(out), "--no-progress", "--export", str(tmp_path / "w.pt")])
    r = json.loads(out.read_text())
    assert r["cnn_params"] == 6690 and r["qt_params"] is None
    assert r["test_accuracy"] > 0.5  # the toy classes are a bright band: easy
    assert (tmp_path / "w.pt").stat().st_size > 6690 * 4


@pytest.mark.parametrize("args, message", [
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
    r = subprocess.run([sys.executable, "-m", "qt_helpers", "train", "--help"], capture_output=True, text=True)
    assert r.returncode == 0 and "--n-train" in r.stdout and "--backend" in r.stdout


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


@pytest.mark.parametrize("args, message", [
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
    assert len(r["history"]["val_acc"]) == 2 and r["val_accuracy"] == r["history"]["val_acc"][-1]
    assert 0 <= r["val_accuracy"] <= 1


@pytest.mark.parametrize("when", ["never", "end"])
def test_the_test_set_is_read_only_when_asked(pack_dir, when):
    out = pack_dir / "t.json"
    main(["train", "--model", "classical", "--epochs", "2", "--batch-size", "50", "--val-fraction", "0.1",
          "--test", when, "--data-dir", str(pack_dir), "--json", str(out), "--no-progress"])
    r = json.loads(out.read_text())
    assert r["history"]["test_acc"] == [None, None] and 0 <= r["val_accuracy"] <= 1  # never during training
    assert (r["test_accuracy"] is None) == (when == "never")
    if when == "end":
        assert 0 <= r["test_accuracy"] <= 1
