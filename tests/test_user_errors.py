"""Every user mistake ends in one line `error: ...` and exit code 2 before any work; no run is lost or mixed.

The table below is the hostile-user list: each bad command goes through the real CLI entry point (`main`, and
a few through `python -m qt_helpers` in a subprocess), must print exactly one line on stderr, nothing on
stdout (so no data was loaded and nothing trained), and write no file.
"""
import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest
import torch

from qt_helpers.cli import main
from qt_helpers.science.experiments import commands, finished, run_commands, run_one
from qt_helpers.science.experiments import main as grids_main
from qt_helpers.notebook import check_params

BAD_TRAIN = [  # (arguments, part of the one-line message)
    (["--lr", "0"], "--lr must be a positive number, got 0.0"),
    (["--lr", "nan"], "--lr must be a positive number"),
    (["--lr=-1e-3"], "--lr must be a positive number"),
    (["--batch-size", "0"], "--batch-size must be a whole number >= 1, got 0"),
    (["--batch-size", "-5"], "--batch-size must be a whole number >= 1, got -5"),
    (["--epochs", "0"], "--epochs must be a whole number >= 1, got 0"),
    (["--epochs", "abc"], "invalid int value: 'abc'"),
    (["--blocks", "0"], "--blocks must be a whole number >= 1"),
    (["--qubits", "1"], "--qubits must be a whole number >= 2"),
    (["--n-train", "70000"], "--n-train 70,000 is more than mnist's 60,000 images"),
    (["--n-test", "0"], "--n-test must be a whole number >= 1"),
    (["--n-train", "5000"], "asked for 5000 samples but only 200 are available"),  # the pack is smaller
    (["--seed", "-1"], "--seed must be a whole number from 0 to 2**32 - 1, got -1"),
    (["--device", "tpu9"], "--device 'tpu9' is not a device torch knows"),
    (["--dataset", "svhn"], "unknown dataset 'svhn'"),
    (["--recipe", "best"], "unknown recipe 'best'; choose one of: reference, lr-cosine, improved, classical"),
    (["--model", "classical", "--shots", "10"], "are QT options; drop them for --model classical"),
    (["--activation", "swish"], "unknown activation 'swish'"),
    (["--preset", "paper"], "unknown preset 'paper'"),
    (["--resume"], "resume needs a checkpoint file"),
    (["--checkpoint", "{tmp}/missing.pt", "--resume"], "cannot resume: checkpoint {tmp}/missing.pt does not exist"),
    (["--json", "{tmp}/no/such/r.json"], "--json {tmp}/no/such/r.json: folder {tmp}/no/such does not exist"),
    (["--export", "{tmp}/no/w.pt"], "--export {tmp}/no/w.pt: folder {tmp}/no does not exist"),
    (["--json", "{tmp}"], "is a folder; give a file name"),
    (["--json", "{tmp}/kept.json"], "--json {tmp}/kept.json already exists; pass --overwrite"),
    (["--checkpoint", "{tmp}/kept.pt"], "checkpoint {tmp}/kept.pt already exists; pass --resume to continue it"),
]
if not torch.cuda.is_available():
    BAD_TRAIN.append((["--device", "cuda"], "this machine has no CUDA GPU; use --device cpu"))


def run_main(argv, capsys, entry=main):
    """(exit code, stdout, stderr) of the CLI (or of another entry point, e.g. the grids')."""
    try:
        rc = entry(argv)
    except SystemExit as e:  # argparse's own errors
        rc = e.code
    out = capsys.readouterr()
    return rc, out.out, out.err


def one_line_error(rc, out, err):
    assert rc == 2, (rc, err)
    assert err.startswith("error: ") and err.count("\n") == 1, err  # one line, no traceback
    assert "Traceback" not in err
    return err


@pytest.mark.parametrize("args, message", BAD_TRAIN, ids=[" ".join(a) for a, _ in BAD_TRAIN])
def test_bad_train_arguments_fail_in_one_line_before_any_work(args, message, pack_dir, tmp_path, capsys):
    tmp = tmp_path / "user"
    tmp.mkdir()
    (tmp / "kept.json").write_text("{}")
    (tmp / "kept.pt").write_bytes(b"a user's file")
    args = [a.replace("{tmp}", str(tmp)) for a in args]
    rc, out, err = run_main(["train", "--data-dir", str(pack_dir), "--no-progress", "--blocks", "2", *args], capsys)
    assert message.replace("{tmp}", str(tmp)) in one_line_error(rc, out, err)
    assert out == ""  # nothing was loaded or trained
    assert (tmp / "kept.json").read_text() == "{}" and (tmp / "kept.pt").read_bytes() == b"a user's file"
    assert sorted(p.name for p in tmp.iterdir()) == ["kept.json", "kept.pt"]


@pytest.mark.parametrize("fault, message", [
    ("garbage", "corrupt, truncated or not an .npz pack"),
    ("labels", "y_train must hold integer labels in 0..9"),
])
def test_broken_data_packs_are_named_in_one_line(fault, message, tmp_path, capsys):
    if fault == "garbage":
        (tmp_path / "mnist.npz").write_bytes(b"PK\x03\x04 not really a zip")
    else:
        y = np.full(20, 12, np.uint8)
        x = np.zeros((20, 28, 28), np.uint8)
        np.savez(tmp_path / "mnist.npz", x_train=x, y_train=y, x_test=x, y_test=y % 10,
                 classes=np.array([str(i) for i in range(10)]))
    rc, out, err = run_main(["train", "--data-dir", str(tmp_path), "--no-progress"], capsys)
    assert message in one_line_error(rc, out, err) and str(tmp_path / "mnist.npz") in err


def test_the_real_command_shows_no_traceback_unless_asked(tmp_path):
    env = {**os.environ, "QT_DATA_DIR": str(tmp_path), "QT_CACHE_DIR": str(tmp_path), "TORCH_HOME": str(tmp_path)}
    cmd = [sys.executable, "-m", "qt_helpers"]
    missing = subprocess.run(cmd + ["train", "--dataset", "cifar10", "--data-dir", str(tmp_path)],
                             capture_output=True, text=True, env=env)
    assert missing.returncode == 2 and missing.stderr.startswith("error: ") and "Traceback" not in missing.stderr
    assert "cifar10" in missing.stderr and missing.stderr.count("\n") == 1
    epochs = subprocess.run(cmd + ["train", "--epochs", "0"], capture_output=True, text=True, env=env)
    assert (epochs.returncode, epochs.stderr) == (2, "error: --epochs must be a whole number >= 1, got 0\n")
    debug = subprocess.run(cmd + ["--debug", "train", "--epochs", "0"], capture_output=True, text=True, env=env)
    assert debug.returncode == 1 and "Traceback" in debug.stderr and "UsageError" in debug.stderr


# ------------------------------------------------------------------------------------------------- checkpoints
def train(pack_dir, *args):
    return ["train", "--data-dir", str(pack_dir), "--no-progress", "--blocks", "2", "--batch-size", "50", *args]


def test_checkpoints_refuse_another_run_and_are_never_overwritten(pack_dir, tmp_path, capsys):
    ckpt = tmp_path / "run.pt"
    assert main(train(pack_dir, "--epochs", "1", "--checkpoint", str(ckpt))) == 0
    first = ckpt.read_bytes()
    capsys.readouterr()
    for args, message in [
        (["--epochs", "1"], "already exists; pass --resume to continue it or --overwrite to start over"),
        (["--epochs", "2", "--resume", "--lr", "0.01"], "lr: checkpoint 0.0001, this run 0.01"),  # extending: same run
        (["--epochs", "1", "--resume", "--lr", "0.01"], "lr: checkpoint 0.0001, this run 0.01"),
        (["--epochs", "1", "--resume", "--activation", "relu"], "activation: checkpoint None, this run 'relu'"),
        (["--epochs", "1", "--resume", "--seed", "3"], "seed: checkpoint 42, this run 3"),
    ]:
        rc, out, err = run_main(train(pack_dir, "--checkpoint", str(ckpt), *args), capsys)
        assert message in one_line_error(rc, out, err), args
        assert f"checkpoint {ckpt}" in err
        assert ckpt.read_bytes() == first  # untouched
    out = tmp_path / "r.json"
    assert main(train(pack_dir, "--epochs", "1", "--checkpoint", str(ckpt), "--resume", "--json", str(out))) == 0
    assert json.loads(out.read_text())["history"]["epoch"] == [1]  # the finished run, resumed: nothing retrained
    assert main(train(pack_dir, "--epochs", "1", "--checkpoint", str(ckpt), "--overwrite")) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mnist.npz", "r.json", "run.pt"]  # no temporary files


@pytest.mark.parametrize("content", [b"", b"\x00" * 64, b"not a checkpoint at all", "truncated"])
def test_unreadable_checkpoints_are_named(content, pack_dir, tmp_path, capsys):
    ckpt = tmp_path / "run.pt"
    if content == "truncated":
        assert main(train(pack_dir, "--epochs", "1", "--checkpoint", str(ckpt))) == 0
        content = ckpt.read_bytes()[:200]
        capsys.readouterr()
    ckpt.write_bytes(content)
    rc, out, err = run_main(train(pack_dir, "--epochs", "1", "--checkpoint", str(ckpt), "--resume"), capsys)
    assert f"checkpoint {ckpt} is unreadable" in one_line_error(rc, out, err)


# ------------------------------------------------------------------------------------------------------- grids
def test_broken_records_are_named_and_redone(pack_dir, tmp_path, capsys):
    out = tmp_path / "runs"
    small = ["--blocks", "2", "--epochs", "1", "--data-dir", str(pack_dir), "--batch-size", "100"]
    cmds = commands("shots", "mnist", out, extra=small)[:1]
    path = cmds[0][0]
    path.parent.mkdir(parents=True)
    path.write_text('{"command": "python -m qt_helpers train", "hist')  # a run killed while writing
    (path.parent / "notes.json").write_text("[1, 2")  # someone's broken file elsewhere in the folder
    assert finished(out) == {}
    assert run_commands(cmds, out) == []
    printed = capsys.readouterr().out
    assert f"not a finished run, will be redone: {path}" in printed and "1 runs to do" in printed
    assert json.loads(path.read_text())["history"]["epoch"] == [1]
    assert list(finished(out).values()) == [path]
    other = commands("shots", "mnist", out, extra=[*small[:2], "--epochs", "2", *small[4:]])[:1]
    assert run_commands(other, out, force=False) == []  # 2 epochs is another run: the 1-epoch record is redone
    printed = capsys.readouterr().out
    assert "1 runs to do" in printed and f"{path} holds another run" in printed
    assert path.with_suffix(".log").read_text().count("=== ") == 2  # the log is appended to, not truncated


@pytest.mark.parametrize("args, message", [
    (["seeds", "--epochs", "0"], "--epochs must be a whole number >= 1, got 0"),
    (["seeds", "--jobs", "0"], "--jobs must be a whole number >= 1"),
    (["seeds", "--n-train", "512"], "subset runs, which must not mix with the full-scale results"),
    (["sweep"], "unknown grid 'sweep'"),
    (["seeds", "--dataset", "svhn"], "unknown dataset 'svhn'"),
])
def test_bad_experiment_arguments(args, message, capsys):
    rc, out, err = run_main([*args, "--dry-run"], capsys, grids_main)
    assert message in one_line_error(rc, out, err)


def test_the_old_experiment_command_says_where_the_grids_went(capsys):
    rc, out, err = run_main(["experiment", "seeds", "--dataset", "mnist"], capsys)
    assert "python -m qt_helpers.science.experiments seeds --dataset mnist" in one_line_error(rc, out, err)


def test_a_killed_grid_takes_its_runs_with_it(tmp_path):
    script = textwrap.dedent("""
        import subprocess, sys, time
        from qt_helpers.science.experiments import _die_with_parent
        child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"], preexec_fn=_die_with_parent)
        print(child.pid, flush=True)
        time.sleep(60)
    """)
    parent = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    child = int(parent.stdout.readline())
    parent.send_signal(signal.SIGKILL)
    parent.wait()
    for _ in range(50):
        try:
            os.kill(child, 0)
        except ProcessLookupError:
            break
        time.sleep(0.1)
    else:
        os.kill(child, signal.SIGKILL)
        pytest.fail("the run outlived its killed grid")


def test_run_logs_are_appended(tmp_path):
    path = tmp_path / "run.json"
    for _ in range(2):
        assert run_one(path, ["train", "--epochs", "0"], threads=1) == 2
    log = path.with_suffix(".log").read_text()
    assert log.count("=== ") == 2 and log.count("error: --epochs must be") == 2


# ----------------------------------------------------------------------------------------------- notebooks
@pytest.mark.parametrize("params, message", [
    ({"blocks": "abc"}, "parameter blocks: expected a whole number >= 1 (or None), got 'abc'"),
    ({"blocks": 0}, "parameter blocks"),
    ({"seed": -1}, "parameter seed: expected a whole number >= 0"),
    ({"backend": "qiskit"}, "parameter backend: 'qiskit' is not one of native, torchquantum, pennylane"),
])
def test_notebook_parameters_are_checked_by_name(params, message):
    values = {"blocks": 16, "seed": 42, "backend": "native", **params}
    with pytest.raises(ValueError) as e:
        check_params(values, counts=("blocks",), nonnegative=("seed",),
                     choices={"backend": ("native", "torchquantum", "pennylane")})
    assert message in str(e.value)
