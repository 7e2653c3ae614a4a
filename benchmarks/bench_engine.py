"""The native engine on the CPU, measured side by side: forward, gradient and training steps.

Rows (all on the CPU, float32, one process; every number is the minimum of `--repeats` runs after a warm-up):
- `forward` / `gradient`: the final state of the u3cu3 circuit on 19 qubits, and the gradient of Σ w·p over its
  angles (forward included), at 38 and 95 blocks;
- `qiskit-aer`: Qiskit Aer's statevector forward pass of the same circuit (single precision), for reference;
- `cifar10-95 step` / `cnn step`: one QT training step (batch 1,000) against the CNN alone on the same batch;
- `mnist-16 step`: the native QT step against TorchQuantum's (batch 128), and the CNN alone on that batch (no
  QT step can be cheaper, so TorchQuantum's step over it is the most any engine could reach);
- `sgemm 1024 ×20`: twenty products of two 1024 × 1024 float32 matrices, the machine's own arithmetic: its
  2-thread speed-up, and the work two one-thread processes do at once against one alone, bound any thread
  scaling here.
Each is measured with 1 and with 2 threads. With `--baseline REV` the same rows are measured, in the same run,
for the engine of commit REV (checked out under build/): before and after alternate `--rounds` times, each in a
fresh process, and the fastest of each row is kept, so a drift of the machine hits both alike. Rows whose code
did not change (the CNN step, TorchQuantum's step, Qiskit Aer) show how far apart two measurements of the
same thing land: read the other ratios against them. Run it on a quiet machine.

    python benchmarks/bench_engine.py --baseline c7a4adb --json results/bench/engine-cpu.json
    python benchmarks/bench_engine.py --quick     # tiny sizes, a few seconds (CI)
"""
import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]


def best(fn, warmup=1, repeats=3):
    """Minimum wall seconds of `fn()` over `repeats` calls after `warmup` untimed ones (qtbook.bench.timed)."""
    from qtbook.bench import timed  # here: a measuring worker may import an old checkout of qt_helpers

    return min(timed(fn, warmup, repeats))


def circuit_rows(n, blocks, repeats):
    """Forward and gradient seconds of the native engine at n qubits."""
    from qt_helpers import native
    from qt_helpers.circuits import get_ansatz

    angles = get_ansatz("u3cu3").init(blocks, n, torch.Generator().manual_seed(0)).requires_grad_(True)
    w = torch.randn(2**n, generator=torch.Generator().manual_seed(1))

    def forward():
        with torch.no_grad():
            native.probabilities(angles, n)

    def gradient():
        torch.autograd.grad((native.probabilities(angles, n) * w).sum(), angles)

    return {"forward": best(forward, 1, repeats), "gradient": best(gradient, 1, repeats)}


def aer_forward(n, blocks, repeats, threads):
    """Seconds of Qiskit Aer's single-precision statevector run of the same circuit (None without Aer)."""
    try:
        from qiskit import QuantumCircuit, transpile
        from qiskit_aer import AerSimulator
    except ImportError:
        return None
    from qt_helpers.circuits import get_ansatz

    a = get_ansatz("u3cu3")
    angles = a.init(blocks, n, torch.Generator().manual_seed(0)).tolist()
    qc = QuantumCircuit(n)
    q = lambda w: n - 1 - w  # noqa: E731  (our wire 0 is the most significant bit; Qiskit's qubit 0 the least)
    for b in range(blocks):
        for name, wires, first, count in a.gates(b, n):
            theta, phi, lam = angles[b][first:first + count]
            if name == "u3":
                qc.u(theta, phi, lam, q(wires[0]))
            else:
                qc.cu(theta, phi, lam, 0, q(wires[0]), q(wires[1]))
    qc.save_statevector()
    sim = AerSimulator(method="statevector", precision="single", max_parallel_threads=threads,
                       statevector_parallel_threshold=min(n, 14))
    qc = transpile(qc, sim, optimization_level=0)
    return best(lambda: sim.run(qc).result(), 1, repeats)


def step_rows(quick, repeats):
    """Seconds of one training step: QT at CIFAR-10 95 blocks against the CNN alone; MNIST-16 native against
    TorchQuantum and the CNN alone. A config's rows take turns, step by step, so that a drift of the machine hits
    them alike; each row is its fastest step (of `repeats`, and of 5 × `repeats` for the cheap MNIST-16 steps)."""
    from qt_helpers.models import cnn
    from qt_helpers.train import make_optimizer
    from qtbook.bench import CONFIGS, build, timed

    cpu, loss_fn, rows = torch.device("cpu"), torch.nn.CrossEntropyLoss(), {}

    def step(net, x, y, opt):
        opt.zero_grad(set_to_none=True)
        loss_fn(net(x), y).backward()
        opt.step()

    for config in ([] if quick else ["cifar10-95"]) + ["mnist-16"]:
        size = "tiny" if quick else config
        qnns = ["native"] if config == "cifar10-95" else ["native", "torchquantum"]
        setups = {b: build(size, b, cpu) for b in qnns}
        net = cnn(CONFIGS[size][0])  # the CNN alone on the same batch: what a QT step costs without its QNN
        setups["cnn"] = (net, *setups["native"][1:3], make_optimizer(net)[0])
        times = {b: [] for b in setups}
        for _ in range(repeats if config == "cifar10-95" else 5 * repeats):
            for b, setup in setups.items():
                times[b] += timed(lambda setup=setup: step(*setup))
        rows.update({f"{config} {b} step": min(t[1:] or t) for b, t in times.items()})  # the first: a warm-up
    return rows


def sgemm_seconds(repeats, size=1024, count=20):
    """Seconds of `count` float32 products of two size × size matrices: the machine's own compute, engine aside."""
    a, b = torch.randn(size, size), torch.randn(size, size)
    return best(lambda: [a @ b for _ in range(count)], 1, repeats)


def two_process_speedup(repeats):
    """Work done by two one-thread processes running `sgemm_seconds` at once, against one alone (2.0 = two
    independent cores): how much a second core can add on this machine, whatever the code."""
    code = ("import sys, torch; torch.set_num_threads(1); sys.path.insert(0, sys.argv[1]); "
            "from bench_engine import sgemm_seconds; print(sgemm_seconds(int(sys.argv[2])))")
    argv = [sys.executable, "-c", code, str(Path(__file__).parent), str(repeats)]
    alone = float(subprocess.run(argv, capture_output=True, text=True, check=True).stdout)
    pair = [subprocess.Popen(argv, stdout=subprocess.PIPE, text=True) for _ in range(2)]
    together = max(float(p.communicate()[0]) for p in pair)
    return 2 * alone / together


def measure(quick, repeats, threads_list, blocks_list=(38, 95), aer=True):
    """{threads: {row: seconds}} for this process's qt_helpers."""
    n, blocks_list = (10, [4]) if quick else (19, list(blocks_list))
    out = {}
    for threads in threads_list:
        torch.set_num_threads(threads)
        rows = {}
        for blocks in blocks_list:
            r = circuit_rows(n, blocks, repeats)
            rows[f"{n}q L={blocks} forward"] = r["forward"]
            rows[f"{n}q L={blocks} gradient"] = r["gradient"]
            seconds = aer_forward(n, blocks, repeats, threads) if aer else None
            if seconds is not None:
                rows[f"{n}q L={blocks} qiskit-aer forward"] = seconds
        rows.update(step_rows(quick, repeats))
        rows["sgemm 1024 ×20"] = sgemm_seconds(repeats)
        out[threads] = rows
        print(f"  measured {len(rows)} rows with {threads} thread(s)", file=sys.stderr, flush=True)
    return out


def in_subprocess(argv, path=ROOT):
    """The rows measured by a fresh process that imports qt_helpers from `path` (a checkout)."""
    out = ROOT / "build" / f"rows-{path.name}.json"
    out.parent.mkdir(exist_ok=True)
    env = {**os.environ, "PYTHONPATH": str(path)}
    subprocess.run([sys.executable, __file__, *argv, "--rows-only", str(out)], check=True, env=env, cwd=path)
    return {int(k): v for k, v in json.loads(out.read_text()).items()}


def checkout(rev):
    """A checkout of commit `rev` under build/ (made once)."""
    path = ROOT / "build" / f"baseline-{rev}"
    if not path.exists():
        subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", str(path), rev], check=True,
                       capture_output=True)
    return path


def fastest(runs):
    """Per thread count and row, the fastest of several measurements."""
    out = {}
    for run in runs:
        for threads, rows in run.items():
            for key, v in rows.items():
                out.setdefault(threads, {})[key] = min(v, out.get(threads, {}).get(key, v))
    return out


def ratios(rows):
    """The ratios the engine issue asks for, per thread count."""
    out = {}
    for key in rows:
        if key.endswith(" gradient"):
            out[key.replace(" gradient", " gradient / forward")] = rows[key] / rows[key.replace("gradient", "forward")]
    if "cifar10-95 native step" in rows:
        out["cifar10-95 step / cnn step"] = rows["cifar10-95 native step"] / rows["cifar10-95 cnn step"]
    if "mnist-16 torchquantum step" in rows:
        out["torchquantum / native (mnist-16 step)"] = rows["mnist-16 torchquantum step"] / rows["mnist-16 native step"]
    if "mnist-16 cnn step" in rows:  # a native step that cost nothing but its CNN would reach this
        tq = rows["mnist-16 torchquantum step"]
        out["torchquantum / cnn alone (mnist-16 ceiling)"] = tq / rows["mnist-16 cnn step"]
    return out


def table(after, before=None):
    """A Markdown table: each row's seconds per thread count, before and after, and the derived ratios."""
    from qtbook.notebook import markdown_table  # imported here: workers import the engine they measure

    threads = sorted(after)
    header = ["row"] + [c for t in threads for c in ([f"before, {t} thr"] if before else []) + [f"after, {t} thr"]]

    def cells(get, fmt):
        return [c for t in threads for c in ([fmt(get(before, t))] if before else []) + [fmt(get(after, t))]]

    def seconds(v):
        return "–" if v is None else (f"{v * 1e3:.1f} ms" if v < 1 else f"{v:.2f} s")

    rows = [[key, *cells(lambda d, t, key=key: d.get(t, {}).get(key), seconds)] for key in after[threads[0]]]
    rows += [[f"**{key}**", *cells(lambda d, t, key=key: ratios(d.get(t, {})).get(key),
                                   lambda v: "–" if v is None else f"{v:.2f}×")] for key in ratios(after[threads[0]])]
    text = markdown_table(header, rows)
    if 1 in after and 2 in after and "cifar10-95 native step" in after[1]:
        scale = after[1]["cifar10-95 native step"] / after[2]["cifar10-95 native step"]
        text += f"\n\n2 threads against 1 at cifar10-95 (after): {scale:.2f}× faster"
    if 1 in after and 2 in after and "sgemm 1024 ×20" in after[1]:
        scale = after[1]["sgemm 1024 ×20"] / after[2]["sgemm 1024 ×20"]
        text += f"\n\n2 threads against 1 on a large matrix product, the machine's ceiling: {scale:.2f}× faster"
    return text


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="tiny sizes (10 qubits, 4 blocks, the tiny step): seconds")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    p.add_argument("--baseline", help="also measure the engine of this commit (before), in the same run")
    p.add_argument("--rounds", type=int, default=2,
                   help="with --baseline: before and after measured alternately this many times (fastest kept)")
    p.add_argument("--blocks", type=int, nargs="+", default=[38, 95], help="circuit depths of the 19-qubit rows")
    p.add_argument("--no-aer", action="store_true", help="leave out the Qiskit Aer rows")
    p.add_argument("--json", help="write the rows, ratios and machine description here")
    p.add_argument("--rows-only", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    common = (["--quick"] if args.quick else []) + ["--repeats", str(args.repeats), "--threads",
                                                     *map(str, args.threads), "--blocks", *map(str, args.blocks)]
    common += ["--no-aer"] if args.no_aer else []
    if args.rows_only:  # a measuring subprocess
        rows = measure(args.quick, args.repeats, args.threads, args.blocks, not args.no_aer)
        Path(args.rows_only).write_text(json.dumps(rows))
        return 0
    pair = two_process_speedup(args.repeats)
    if args.baseline:  # alternate before and after, so that a drift of the machine hits both alike
        old, pairs = checkout(args.baseline), [[], []]
        for _ in range(args.rounds):
            pairs[0].append(in_subprocess(common, old))
            pairs[1].append(in_subprocess(common))
        before, after = fastest(pairs[0]), fastest(pairs[1])
    else:
        before, after = None, measure(args.quick, args.repeats, args.threads, args.blocks, not args.no_aer)
    print(table(after, before) + f"\n\nTwo one-thread processes at once do {pair:.2f}× the work of one "
          "(the machine's ceiling for any 2-core speed-up)")
    if args.json:
        from qt_helpers.records import provenance  # here: a measuring worker may import an old checkout

        meta = {**provenance("cpu"), "baseline": args.baseline, "quick": args.quick, "rounds": args.rounds,
                "repeats": args.repeats}  # commit '+dirty': the code measured was not committed
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        from qt_helpers.records import write_json

        write_json(args.json, {"meta": meta, "two_process_speedup": pair, "before": before, "after": after,
                               "ratios": {t: ratios(r) for t, r in after.items()}})
    return 0


if __name__ == "__main__":
    sys.exit(main())
