"""tools/gpu_run.py, the prepared GPU run, at tiny sizes on the CPU: every stage writes its JSON, and a second
run skips what is done (no timing is asserted)."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "tools" / "gpu_run.py"


def run(out, *args):
    r = subprocess.run([sys.executable, str(SCRIPT), "--out", str(out), "--quick", *args], capture_output=True,
                       text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert r.returncode == 0, r.stderr[-2000:]
    return r.stdout


def test_stages_write_their_records_and_resume(tmp_path):
    out = tmp_path / "gpu"
    printed = run(out, "--stages", "1", "2", "3", "--budget-s", "300")
    table = json.loads((out / "step-table.json").read_text())
    backends = {r["backend"] for r in table["rows"]}
    assert {"native", "gatewise"} <= backends and all(r["step_ms"] > 0 for r in table["rows"])
    assert all(r["device"] == "cpu" and r["peak_mib"] is None for r in table["rows"])
    assert "| tiny | native | cpu |" in printed
    compiled = json.loads((out / "compiled.json").read_text())
    assert compiled["kept"] in (True, False) and ("same_numbers" in compiled or "error" in compiled)
    epoch = json.loads((out / "mnist-epoch.json").read_text())
    assert epoch["steps"] == 16 and epoch["fifty_epochs_s_extrapolated"] == pytest.approx(50 * epoch["epoch_s"])
    again = run(out, "--stages", "2", "3", "--budget-s", "300")
    assert "compiled.json: done before, skipped" in again and "mnist-epoch.json: done before, skipped" in again


@pytest.mark.skipif(not (Path(os.environ.get("QT_DATA_DIR", "")) / "cifar10.npz").exists(),
                    reason="needs QT_DATA_DIR with cifar10.npz")
def test_cifar_seeds_stage_runs_resumable_train_commands(tmp_path):
    out = tmp_path / "gpu"
    printed = run(out, "--stages", "4", "--budget-s", "240")
    finished = sorted(p.name for p in out.glob("cifar10-seeds-*.json"))
    assert finished and f"finished runs {finished}" in printed
    record = json.loads((out / finished[0]).read_text())
    assert record["blocks"] == 2 and record["n_train"] == 200 and "--checkpoint" in record["command"]
    assert not list(out.glob("*.pt"))  # finished runs drop their checkpoints
