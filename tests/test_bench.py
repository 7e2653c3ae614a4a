"""Smoke test of benchmarks/bench_step.py on a tiny config (no timing assertions)."""
import json
import subprocess
import sys
from pathlib import Path

from qtbook import bench


def test_bench_step_prints_a_table_and_writes_rows(tmp_path, capsys, cells):
    out = tmp_path / "bench.json"
    bench.main(["--configs", "tiny", "--backends", "torchquantum", "gatewise", "native", "--devices", "cpu",
                     "--warmup", "1", "--repeats", "2", "--json", str(out)])
    printed = capsys.readouterr().out
    assert any(row[:3] == ("tiny", "native", "cpu") for row in cells(printed))
    assert "× TorchQuantum" in printed
    result = json.loads(out.read_text())
    rows = {r["backend"]: r for r in result["rows"]}
    assert set(rows) == {"torchquantum", "gatewise", "native"}
    assert all(r["step_ms"] > 0 and r["vs_torchquantum"] > 0 for r in rows.values())
    assert rows["torchquantum"]["vs_torchquantum"] == 1
    assert {"date", "torch", "repeats"} <= result["meta"].keys()


def test_benchmark_script_runs_from_the_repo():
    script = Path(__file__).parents[1] / "benchmarks" / "bench_step.py"
    r = subprocess.run([sys.executable, str(script), "--help"], capture_output=True, check=False, text=True)
    assert r.returncode == 0
    assert "--configs" in r.stdout


def test_engine_benchmark_derives_its_ratios_and_ceilings(cells):
    import importlib.util

    path = Path(__file__).parents[1] / "benchmarks" / "bench_engine.py"
    spec = importlib.util.spec_from_file_location("bench_engine", path)
    engine = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(engine)
    rows = {1: {"19q L=38 forward": 0.5, "19q L=38 gradient": 2.0, "cifar10-95 native step": 4.0,
                "cifar10-95 cnn step": 0.5, "mnist-16 native step": 0.04, "mnist-16 torchquantum step": 0.48,
                "mnist-16 cnn step": 0.02, "sgemm 1024 ×20": 1.0}}
    rows[2] = {k: v / 1.25 for k, v in rows[1].items()}
    r = engine.ratios(rows[1])
    assert r["19q L=38 gradient / forward"] == 4.0
    assert r["cifar10-95 step / cnn step"] == 8.0
    assert r["torchquantum / native (mnist-16 step)"] == 12.0
    assert r["torchquantum / cnn alone (mnist-16 ceiling)"] == 24.0
    text = engine.table(rows)
    assert ("**torchquantum / cnn alone (mnist-16 ceiling)**", "24.00×", "24.00×") in cells(text)
    assert "2 threads against 1 on a large matrix product, the machine's ceiling: 1.25× faster" in text
