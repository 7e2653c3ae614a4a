"""`python -m qt_helpers train`: the table, the JSON results and errors for bad input."""
import json
import subprocess
import sys

import numpy as np
import pytest

from qt_helpers.cli import main


@pytest.fixture
def pack_dir(tmp_path):
    """A tiny MNIST pack (200 train / 100 test images) in the shared packs' format."""
    rng = np.random.default_rng(0)
    y_train, y_test = np.arange(200) % 10, np.arange(100) % 10
    make = lambda y: (rng.integers(0, 60, (len(y), 28, 28)) + 150 * (np.arange(28)[None, :, None] // 3 == y[:, None, None])).astype(np.uint8)  # noqa: E731
    np.savez(tmp_path / "mnist.npz", x_train=make(y_train), y_train=y_train.astype(np.uint8),
             x_test=make(y_test), y_test=y_test.astype(np.uint8), classes=np.array([str(i) for i in range(10)]))
    return tmp_path


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
def test_bad_input_exits_with_the_valid_choices(pack_dir, args, message):
    with pytest.raises(SystemExit) as e:
        main(["train", "--data-dir", str(pack_dir), "--no-progress", "--epochs", "1", *args])
    assert message in str(e.value)


def test_module_entry_point_prints_help():
    r = subprocess.run([sys.executable, "-m", "qt_helpers", "train", "--help"], capture_output=True, text=True)
    assert r.returncode == 0 and "--n-train" in r.stdout and "--backend" in r.stdout
