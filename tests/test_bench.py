"""Smoke test of benchmarks/bench_step.py on a tiny config (no timing assertions)."""
import json
import subprocess
import sys
from pathlib import Path

from qt_helpers import bench


def test_bench_step_prints_a_table_and_writes_rows(tmp_path, capsys):
    out = tmp_path / "bench.json"
    bench.main(["--configs", "tiny", "--backends", "torchquantum", "gatewise", "native", "--devices", "cpu",
                     "--warmup", "1", "--repeats", "2", "--json", str(out)])
    printed = capsys.readouterr().out
    assert "| tiny | native | cpu |" in printed and "× TorchQuantum" in printed
    result = json.loads(out.read_text())
    rows = {r["backend"]: r for r in result["rows"]}
    assert set(rows) == {"torchquantum", "gatewise", "native"}
    assert all(r["step_ms"] > 0 and r["vs_torchquantum"] > 0 for r in rows.values())
    assert rows["torchquantum"]["vs_torchquantum"] == 1
    assert {"date", "torch", "repeats"} <= result["meta"].keys()


def test_benchmark_script_runs_from_the_repo():
    script = Path(__file__).parents[1] / "benchmarks" / "bench_step.py"
    r = subprocess.run([sys.executable, str(script), "--help"], capture_output=True, text=True)
    assert r.returncode == 0 and "--configs" in r.stdout
