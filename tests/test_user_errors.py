"""Every user mistake ends in one line `error: ...` and exit code 2 before any work; no run is lost or mixed.

The table below is the hostile-user list: each bad command goes through the real CLI entry point (`main`, and
a few through `python -m qt_helpers` in a subprocess), must print exactly one line on stderr, nothing on
stdout (so no data was loaded and nothing trained), and write no file.
"""
import json
import os
import re
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest
import torch

from qt_helpers.cli import main
from qtbook.executor import train_job
from qtbook.experiments import commands, finished, run_commands
from qtbook.experiments import main as grids_main
from qtbook.notebook import check_params

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
    # no two outputs of one run at one path
    (["--json", "{tmp}/x", "--export", "{tmp}/x"], "--json and --export are the same file {tmp}/x"),
    (["--json", "{tmp}/x", "--checkpoint", "{tmp}/./x"], "--json and --checkpoint are the same file {tmp}/./x"),
    # upper limits, before any data is loaded
    (["--qubits", "30"], "this run (mnist, 30 qubits, 2 blocks) needs about 128.9 GiB of memory; this machine has"),
    (["--blocks", "100000"], "--blocks 100,000 gives the QNN 7,800,000 angles, more than the 6,690 weights"),
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


def one_line_error(rc, _out, err):  # run_main's (rc, out, err) as they come
    assert rc == 2, (rc, err)
    assert err.startswith("error: "), err
    assert err.count("\n") == 1, err  # one line, no traceback
    assert "Traceback" not in err
    return err


@pytest.mark.parametrize(("args", "message"), BAD_TRAIN, ids=[" ".join(a) for a, _ in BAD_TRAIN])
def test_bad_train_arguments_fail_in_one_line_before_any_work(args, message, pack_dir, tmp_path, capsys):
    tmp = tmp_path / "user"
    tmp.mkdir()
    (tmp / "kept.json").write_text("{}")
    (tmp / "kept.pt").write_bytes(b"a user's file")
    args = [a.replace("{tmp}", str(tmp)) for a in args]
    rc, out, err = run_main(["train", "--data-dir", str(pack_dir), "--no-progress", "--blocks", "2", *args], capsys)
    assert message.replace("{tmp}", str(tmp)) in one_line_error(rc, out, err)
    assert out == ""  # nothing was loaded or trained
    assert (tmp / "kept.json").read_text() == "{}"
    assert (tmp / "kept.pt").read_bytes() == b"a user's file"
    assert sorted(p.name for p in tmp.iterdir()) == ["kept.json", "kept.pt"]


@pytest.mark.parametrize(("fault", "message"), [
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
    assert message in one_line_error(rc, out, err)
    assert str(tmp_path / "mnist.npz") in err


def test_the_real_command_shows_no_traceback_unless_asked(tmp_path):
    env = {**os.environ, "QT_DATA_DIR": str(tmp_path), "QT_CACHE_DIR": str(tmp_path), "TORCH_HOME": str(tmp_path)}
    cmd = [sys.executable, "-m", "qt_helpers"]
    missing = subprocess.run([*cmd, "train", "--dataset", "cifar10", "--data-dir", str(tmp_path)],
                             capture_output=True, check=False, text=True, env=env)
    assert missing.returncode == 2
    assert missing.stderr.startswith("error: ")
    assert "Traceback" not in missing.stderr
    assert "cifar10" in missing.stderr
    assert missing.stderr.count("\n") == 1
    epochs = subprocess.run([*cmd, "train", "--epochs", "0"], capture_output=True, check=False, text=True, env=env)
    assert (epochs.returncode, epochs.stderr) == (2, "error: --epochs must be a whole number >= 1, got 0\n")
    debug = subprocess.run([*cmd, "--debug", "train", "--epochs", "0"], capture_output=True, text=True, env=env,
                           check=False)
    assert debug.returncode == 1
    assert "Traceback" in debug.stderr
    assert "ValueError: --epochs" in debug.stderr


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
        (["--epochs", "2", "--resume", "--extend", "--lr", "0.01"], "lr: checkpoint 0.0001, this run 0.01"),
        (["--epochs", "2", "--resume"], "is a finished 1-epoch run: add --extend"),  # never implicit
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
    assert f"not a finished run, will be redone: {path}" in printed
    assert "1 runs to do" in printed
    assert json.loads(path.read_text())["history"]["epoch"] == [1]
    assert list(finished(out).values()) == [path]
    other = commands("shots", "mnist", out, extra=[*small[:2], "--epochs", "2", *small[4:]])[:1]
    with pytest.raises(ValueError, match="holds a finished run of another command") as e:  # kept without --force
        run_commands(other, out, force=False)
    assert f"{path} holds a finished run of another command (epochs 1 (this grid: 2)); pass --force" in str(e.value)
    assert json.loads(path.read_text())["epochs"] == 1  # kept
    assert run_commands(other, out, force=True) == []
    assert "1 runs to do" in capsys.readouterr().out
    assert json.loads(path.read_text())["epochs"] == 2
    assert path.with_suffix(".log").read_text().count("=== ") == 2  # the log is appended to, not truncated


@pytest.mark.parametrize(("args", "message"), [
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
    assert "python -m qtbook.experiments seeds --dataset mnist" in one_line_error(rc, out, err)


def test_a_killed_grid_takes_its_runs_with_it(tmp_path):
    started = tmp_path / "started"
    script = textwrap.dedent(f"""
        import time
        from qtbook.executor import make_executor
        ex = make_executor("local", 1)  # a run in the grid's process pool:
        ex.submit(exec, "import pathlib, time; pathlib.Path({str(started)!r}).touch(); time.sleep(60)")
        time.sleep(60)
    """)
    parent = subprocess.Popen([sys.executable, "-c", script])

    def children():
        ps = subprocess.run(["ps", "-o", "pid=", "--ppid", str(parent.pid)], capture_output=True, text=True,
                            check=False)
        return [int(pid) for pid in ps.stdout.split()]

    for _ in range(600):  # until the run has started in its worker
        if started.exists():
            break
        time.sleep(0.1)
    workers = children()
    assert workers
    parent.send_signal(signal.SIGKILL)
    parent.wait()
    for _ in range(50):
        alive = []
        for pid in workers:
            try:
                os.kill(pid, 0)
                alive.append(pid)
            except ProcessLookupError:
                pass
        if not alive:
            break
        time.sleep(0.1)
    else:
        for pid in alive:
            os.kill(pid, signal.SIGKILL)
        pytest.fail("the run outlived its killed grid")


def test_run_logs_are_appended(tmp_path, capfd):
    log = tmp_path / "run.log"
    for _ in range(2):
        assert train_job(["train", "--epochs", "0"], log, threads=1) == 2
    log = log.read_text()
    assert log.count("=== ") == 2
    assert log.count("error: --epochs must be") == 2
    assert "python -m qt_helpers train --epochs 0" in log
    assert capfd.readouterr().err == ""  # the run's output went to its log, nowhere else


# ----------------------------------------------------------------------------------------------- notebooks
@pytest.mark.parametrize(("params", "message"), [
    ({"blocks": "abc"}, "parameter blocks: expected a whole number >= 1 (or None), got 'abc'"),
    ({"blocks": 0}, "parameter blocks"),
    ({"seed": -1}, "parameter seed: expected a whole number >= 0"),
    ({"backend": "qiskit"}, "parameter backend: 'qiskit' is not one of native, torchquantum, pennylane"),
])
def test_notebook_parameters_are_checked_by_name(params, message):
    values = {"blocks": 16, "seed": 42, "backend": "native", **params}
    with pytest.raises(ValueError, match=re.escape(message)) as e:
        check_params(values, counts=("blocks",), nonnegative=("seed",),
                     choices={"backend": ("native", "torchquantum", "pennylane")})
    assert message in str(e.value)


# ------------------------------------------------------------------------------ nothing lost, mixed or unbounded
SMALL = ["--n-train", "100", "--n-test", "100", "--epochs", "1", "--blocks", "2", "--no-progress"]


def cli(pack_dir, *args, **kw):
    """`python -m qt_helpers train ...` in a subprocess (the real command)."""
    return subprocess.run([sys.executable, "-m", "qt_helpers", "train", "--data-dir", str(pack_dir), *args],
                          capture_output=True, check=False, text=True, **kw)


def test_a_failed_write_leaves_the_old_file_whole(pack_dir, tmp_path):
    """A full disk while replacing outputs (here a 2 kB file-size limit): the old export and record stay whole."""
    import resource

    old = {"w.pt": b"the user's earlier export", "r.json": b'{"the": "user\'s earlier record"}'}
    for name, content in old.items():
        (tmp_path / name).write_bytes(content)

    def small_files():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails (EFBIG) instead of killing
        resource.setrlimit(resource.RLIMIT_FSIZE, (2000, 2000))

    r = cli(pack_dir, *SMALL, "--export", str(tmp_path / "w.pt"), "--json", str(tmp_path / "r.json"), "--overwrite",
            preexec_fn=small_files)
    assert r.returncode == 2, r.stderr
    assert r.stderr.startswith("error: "), r.stderr
    assert "File too large" in r.stderr, r.stderr
    assert {n: (tmp_path / n).read_bytes() for n in old} == old  # nothing lost
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mnist.npz", "r.json", "w.pt"]  # no temporary file left


@pytest.mark.parametrize("n_train", ["200", "100"], ids=["mid-epoch", "on-the-last-step"])
def test_a_diverged_run_ends_with_an_error_and_a_record_marked_diverged(n_train, pack_dir, tmp_path):
    out = tmp_path / "r.json"
    r = cli(pack_dir, "--model", "classical", "--lr", "1e30", "--n-train", n_train, "--n-test", "100",
            "--batch-size", "100", "--epochs", "1", "--no-progress", "--json", str(out))
    assert r.returncode == 2, r.stderr
    assert r.stderr.count("\n") == 1, r.stderr
    assert "training diverged" in r.stderr, r.stderr
    assert f"The record {out} is marked diverged" in r.stderr
    record = json.loads(out.read_text())
    assert record["diverged"] is True
    assert record["test_accuracy"] is None
    assert record["val_accuracy"] is None
    assert record["history"]["epoch"] == []  # the epoch that diverged is no result


def test_a_refused_huge_run_allocates_nothing(tmp_path):
    """`--qubits 30` (a 2^30 state) is refused with the number before any data or state: the process stays at
    the size of Python and torch."""
    with (tmp_path / "err").open("w") as err:
        p = subprocess.Popen([sys.executable, "-m", "qt_helpers", "train", "--qubits", "30"], stdout=err,
                             stderr=err)
        _, status, usage = os.wait4(p.pid, 0)
    text = (tmp_path / "err").read_text()
    assert os.waitstatus_to_exitcode(status) == 2, text
    assert text.count("\n") == 1, text
    assert "GiB of memory" in text, text
    assert usage.ru_maxrss < 2 * 2**20, usage.ru_maxrss  # KiB: under 2 GiB, not the 8 GiB state


def test_a_grid_never_starts_more_runs_than_memory_holds(monkeypatch, tmp_path, capsys):
    from qt_helpers import limits

    monkeypatch.setattr(limits, "machine_memory", lambda: (16 * 2**30, 24 * 2**30))  # this project's machine
    rc, out, err = run_main(["blocks", "--jobs", "64", "--out", str(tmp_path)], capsys, grids_main)
    assert "19 runs at once (about 0.9 GiB each) needs about 17.7 GiB of memory; this machine has 16.0 GiB" \
        in one_line_error(rc, out, err)
    assert "use fewer --jobs" in err
    assert not list(tmp_path.glob("*/*"))  # nothing ran


def test_one_grid_per_output_folder(tmp_path, capsys):
    import filelock

    with filelock.FileLock(str(tmp_path / ".grid.lock")):  # another grid process is writing there
        rc, out, err = run_main(["seeds", "--out", str(tmp_path), "--runs", "cnn-seed42"], capsys, grids_main)
    assert f"another grid is running in {tmp_path}" in one_line_error(rc, out, err)


def test_sigterm_stops_the_grid_and_its_run_and_says_how_to_resume(pack_dir, tmp_path):
    out = tmp_path / "runs"
    args = ["seeds", "--runs", "qt-improved-seed42", "--epochs", "500", "--n-train", "200", "--n-test", "100",
            "--blocks", "2", "--data-dir", str(pack_dir), "--out", str(out)]
    grid = subprocess.Popen([sys.executable, "-m", "qtbook.experiments", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    log = out / "mnist" / "seeds" / "qt-improved-seed42.log"
    for _ in range(600):  # until the run has finished an epoch
        if log.exists() and "epoch 1/500" in log.read_text():
            break
        time.sleep(0.1)
    grid.send_signal(signal.SIGTERM)  # the grid process alone, as `kill` does
    _, stderr = grid.communicate(timeout=60)
    assert grid.returncode == 130, stderr
    assert stderr.count("\n") == 1, stderr
    assert stderr.startswith("interrupted: "), stderr
    assert "Traceback" not in stderr, stderr
    assert "resume with: python -m qtbook.experiments seeds --runs qt-improved-seed42" in stderr
    assert log.with_suffix(".pt").exists()
    assert not log.with_suffix(".json").exists()  # epochs kept, no record
    text = log.read_text()
    assert "interrupted: " in text
    assert "continue with: python -m qt_helpers train" in text  # the run said so
    worker = int(text.split("(pid ", 1)[1].split(")", 1)[0])  # the process the run trained in
    for _ in range(50):
        try:
            os.kill(worker, 0)
        except ProcessLookupError:
            break
        time.sleep(0.1)
    else:
        pytest.fail("the run outlived its stopped grid")  # the run stopped with its grid


def test_misspelt_chapter_names_the_chapters(capsys):
    from qtbook.run_notebooks import main as notebooks_main

    rc, out, err = run_main(["02_mnsit", "--out", "/nonexistent"], capsys, notebooks_main)
    assert "no chapter called '02_mnsit'; choose from 01_concept, 02_mnist" in one_line_error(rc, out, err)


@pytest.mark.skipif(torch.cuda.is_available(), reason="a machine without a GPU")
def test_a_chapter_asking_for_a_missing_gpu_fails_in_its_first_cell():
    with pytest.raises(ValueError, match="parameter device: 'cuda', but this machine has no CUDA GPU"):
        check_params({"device": "cuda", "blocks": 4}, counts=("blocks",))
    check_params({"device": "cpu", "blocks": 4}, counts=("blocks",))


def test_the_results_page_refuses_numbers_that_are_not_accuracies(tmp_path):
    from qtbook.results_page import chapter

    nb = {"cells": [], "metadata": {"papermill": {"parameters": {"profile": "small"}}}}
    (tmp_path / "02_mnist.ipynb").write_text(json.dumps(nb))
    (tmp_path / "02_mnist.json").write_text(json.dumps({"qt_improved_acc": float("nan"), "run": {"profile": "cpu"}}))
    with pytest.raises(ValueError, match=r"02_mnist\.json does not fit 02_mnist\.ipynb") as e:
        chapter(tmp_path / "02_mnist.ipynb")
    assert "02_mnist.json does not fit 02_mnist.ipynb: qt_improved_acc is nan" in str(e.value)
