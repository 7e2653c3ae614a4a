"""tools/gpu_run.py, the prepared GPU run, at tiny sizes on the CPU: every stage writes its JSON, and a second
run skips what is done (no timing is asserted)."""
import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "tools" / "gpu_run.py"


def run(out, *args):
    r = subprocess.run([sys.executable, str(SCRIPT), "--out", str(out), "--quick", *args], capture_output=True,
                       text=True, env={**os.environ, "OMP_NUM_THREADS": "1"}, check=False)
    assert r.returncode == 0, r.stderr[-2000:]
    return r.stdout


def test_stages_write_their_records_and_resume(tmp_path, cells):
    out = tmp_path / "gpu"
    printed = run(out, "--stages", "1", "3", "2", "--budget-s", "300")
    table = json.loads((out / "step-table.json").read_text())
    backends = {r["backend"] for r in table["rows"]}
    assert {"native", "gatewise"} <= backends
    assert all(r["step_ms"] > 0 for r in table["rows"])
    assert all(r["device"] == "cpu" and r["peak_mib"] is None for r in table["rows"])
    assert not table["errors"]
    assert any(row[:3] == ("tiny", "native", "cpu") for row in cells(printed))
    compiled = json.loads((out / "compiled.json").read_text())
    graph, comp = compiled["rows"]
    assert graph["variant"] == "cuda-graph"
    assert "need a CUDA GPU" in graph["error"]
    assert not graph["kept"]
    assert comp["variant"] == "torch.compile"
    assert comp["same_numbers"]
    assert comp["kept"] in (True, False)
    mnist = json.loads((out / "mnist-epoch.json").read_text())
    assert mnist["whole_run"]
    assert mnist["num_epochs"] == len(mnist["epoch_s"]) == 2
    assert mnist["steps_per_epoch"] == 16
    assert 0 <= mnist["test_acc"] <= 1
    assert mnist["step_ms"] > 0
    again = run(out, "--stages", "2", "3", "--budget-s", "300")
    assert "compiled.json: done before, skipped" in again
    assert "mnist-epoch.json: done before, skipped" in again


def test_mnist_stage_extrapolates_from_its_finished_epochs(tmp_path):
    sys.path.insert(0, str(SCRIPT.parent))
    from gpu_run import extrapolate

    epochs, seconds = extrapolate(100.0, [101.0, 110.0, 114.0, 119.0], 50)  # 3 epochs finished: 10, 4, 5 s
    assert epochs == [10.0, 4.0, 5.0]
    assert seconds == 10.0 + 49 * 4.5
    with pytest.raises(RuntimeError, match="mnist-cap-s"):
        extrapolate(100.0, [101.0], 50)
    printed = run(tmp_path / "gpu", "--stages", "3", "--mnist-cap-s", "0")  # not one epoch: said, not recorded
    assert "mnist-epoch.json: FAILED" in printed
    assert not (tmp_path / "gpu" / "mnist-epoch.json").exists()


@pytest.mark.skipif(not (Path(os.environ.get("QT_DATA_DIR", "")) / "cifar10.npz").exists(),
                    reason="needs QT_DATA_DIR with cifar10.npz")
def test_cifar_stage_runs_resumable_train_commands_and_bundles_them(tmp_path):
    out, runs = tmp_path / "gpu", tmp_path / "runs"
    printed = run(out, "--stages", "4", "--budget-s", "400", "--runs-dir", str(runs), "--workers", "3",
                  "--cifar-epochs", "1")
    finished = sorted(p.relative_to(runs).as_posix() for p in runs.glob("cifar10/*/*.json"))
    assert finished
    assert "stage 4: finished runs" in printed
    assert {f.split("/")[1] for f in finished} >= {"seeds", "tune", "protocol", "blocks"}  # the protocol after tune
    assert sum(f.startswith("cifar10/protocol/qt-chosen-seed") for f in finished) == 3
    record = json.loads((runs / finished[0]).read_text())
    assert record["blocks"] == 2
    assert record["n_train"] == 200
    assert "--checkpoint" in record["command"]
    with tarfile.open(out / "cifar10-runs.tar") as tar:
        assert set(finished) <= set(tar.getnames())
    assert not list(runs.glob("**/*.pt"))  # finished runs drop their checkpoints
    sys.path.insert(0, str(SCRIPT.parent))
    from gpu_run import unpack

    unpack(out / "cifar10-runs.tar", tmp_path / "back", results=tmp_path / "results")  # here, after the lease
    assert {f.relative_to(tmp_path / "results").as_posix() for f in (tmp_path / "results").glob("*/*/*.json")} \
        == set(finished)
    unpack(out / "cifar10-runs.tar", tmp_path / "back", results=tmp_path / "results")  # again: nothing replaced
