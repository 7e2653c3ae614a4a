"""Smoke test of benchmarks/bench_step.py on a tiny config (no timing assertions)."""
import importlib.util
import json
from pathlib import Path

spec = importlib.util.spec_from_file_location("bench_step", Path(__file__).parents[1] / "benchmarks" / "bench_step.py")
bench_step = importlib.util.module_from_spec(spec)
spec.loader.exec_module(bench_step)


def test_bench_step_prints_a_table_and_writes_rows(tmp_path, capsys):
    out = tmp_path / "bench.json"
    bench_step.main(["--configs", "tiny", "--backends", "torchquantum", "gatewise", "native", "--devices", "cpu",
                     "--warmup", "1", "--repeats", "2", "--json", str(out)])
    printed = capsys.readouterr().out
    assert "| tiny | native | cpu |" in printed and "× TorchQuantum" in printed
    result = json.loads(out.read_text())
    rows = {r["backend"]: r for r in result["rows"]}
    assert set(rows) == {"torchquantum", "gatewise", "native"}
    assert all(r["step_ms"] > 0 and r["vs_torchquantum"] > 0 for r in rows.values())
    assert rows["torchquantum"]["vs_torchquantum"] == 1
    assert {"date", "torch", "repeats"} <= result["meta"].keys()
