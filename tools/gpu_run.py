"""The GPU numbers in one prepared run: everything the book needs from a rare, short GPU lease.

Stages, in this order; each writes its JSON under --out as soon as it exists, and a stage whose JSON is
already there is skipped, so a cut-off run loses at most the stage in flight:

1. `step-table.json`: one QT training step per config × backend × device (`qt_helpers.bench`), with peak
   GPU memory; rows are appended as they finish.
2. `compiled.json`: the native backend's step under `torch.compile` (CUDA graphs on a GPU), against the eager
   step on the same batch: kept only if it is faster and gives the same loss and gradients.
3. `mnist-epoch.json`: one epoch of the MNIST chapter's paper-scale QT training (60,000 images, batch 128),
   timed, and the 50 epochs extrapolated from it.
4. `cifar10-seeds-<run>.json`: CIFAR-10 QT seeds at 95 blocks (the seeds grid's improved runs), each
   resumable from its checkpoint `<run>.pt` beside it (deleted once the run is finished), started only while
   the time budget allows; their output goes to `cifar10-seeds.log`. (Files sit directly in --out: the
   device tool brings back at most 8 files, at most 2 folders down.)

    make gpu-pack                                                     # here: wheels and the CIFAR-10 pack
    make gpu GPU_ARGS="--stages 1 2 3"                                # there, with build/gpu/wheels carried
    make gpu GPU_ARGS="--stages 4"                                    # there, with build/gpu/data carried
    python tools/gpu_run.py --out build/gpu-dry --quick --budget-s 60  # tiny sizes on a CPU (what CI runs)

The GPU machine has Python 3.12 and torch but no package index, and a call carries at most 64 MiB: the
TorchQuantum stack (about 24 MB of wheels) and the CIFAR-10 pack (56 MB) travel in two calls.

Without `pennylane` or `torchquantum` installed, their rows are skipped and say so.
"""
import argparse
import json
import os
import platform
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from qt_helpers import bench  # noqa: E402
from qt_helpers.experiments import commands  # noqa: E402
from qt_helpers.train import device_name  # noqa: E402


def write(path, record):
    """Write a JSON record atomically (a cut-off run never leaves half a file)."""
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(record, indent=2, default=str))
    tmp.replace(path)


def meta():
    """Where and when: device names, versions, date."""
    return {"date": datetime.now(timezone.utc).isoformat(timespec="seconds"), "torch": torch.__version__,
            "cuda": torch.version.cuda, "python": platform.python_version(), "cpu_cores": os.cpu_count(),
            "devices": {d: device_name(d) for d in devices()}}


def devices():
    return ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


def step_table(path, configs, backends, warmup, repeats):
    """Stage 1: the step benchmark table, one row at a time."""
    record = json.loads(path.read_text()) if path.exists() else {"meta": meta(), "rows": [], "skipped": []}
    have = {(r["config"], r["backend"], r["device"]) for r in record["rows"]}
    for device in devices():
        for config in configs:
            for backend in backends:
                if (config, backend, device) in have:
                    continue
                if device == "cpu" and backend in ("torchquantum", "gatewise", "pennylane") and "cifar" in config:
                    continue  # minutes per step on a CPU: the GPU's time is worth more
                try:
                    rows = bench.run([config], [backend], [device], warmup, repeats)
                except ImportError as e:
                    record["skipped"].append(f"{backend}: {e}")
                    rows = []
                record["rows"] += rows
                write(path, record)
    for r in record["rows"]:  # ratios against TorchQuantum on the same device, whichever ran
        ref = [q for q in record["rows"] if (q["config"], q["device"], q["backend"]) ==
               (r["config"], r["device"], "torchquantum")]
        r["vs_torchquantum"] = ref[0]["step_ms"] / r["step_ms"] if ref else None
    write(path, record)
    print(bench.table(record["rows"]), flush=True)
    return record


def compiled(path, config, repeats, quick):
    """Stage 2: torch.compile of the native step; kept only if faster and equal."""
    device = torch.device(devices()[-1])
    net, x, y, opt = bench.build(config, "native", device)
    eager_s = bench.time_steps(net, x, y, opt, device, 1, repeats)[0]
    loss_fn = torch.nn.CrossEntropyLoss()

    def grads(model):
        model.zero_grad(set_to_none=True)
        loss = loss_fn(model(x), y)
        loss.backward()
        return loss.item(), [p.grad.clone() for p in net.parameters() if p.requires_grad]

    record = {"meta": meta(), "config": config, "device": str(device), "eager_ms": eager_s * 1e3}
    try:
        mode = "reduce-overhead" if device.type == "cuda" else None
        model = torch.compile(net, backend="eager" if quick else "inductor", mode=mode)
        t0 = time.perf_counter()
        loss_c, g_c = grads(model)
        record["compile_s"] = time.perf_counter() - t0
        loss_e, g_e = grads(net)
        same = abs(loss_c - loss_e) <= 1e-4 * abs(loss_e) and all(
            torch.allclose(a, b, rtol=1e-3, atol=1e-6) for a, b in zip(g_c, g_e))
        compiled_s = bench.time_steps(model, x, y, opt, device, 1, repeats)[0]
        record.update(compiled_ms=compiled_s * 1e3, same_numbers=same, kept=same and compiled_s < eager_s)
    except Exception as e:  # a compiler that cannot handle the step is a finding, not a crash
        record.update(error=f"{type(e).__name__}: {str(e)[:300]}", kept=False)
    write(path, record)
    print(f"compiled native step: {record}", flush=True)
    return record


def mnist_epoch(path, quick, data_dir):
    """Stage 3: one epoch of the MNIST chapter's paper-scale QT training, timed and extrapolated to 50."""
    from qt_helpers.data import TensorLoader, load_data
    from qt_helpers.recipes import RECIPES
    from qt_helpers.train import fit

    device = torch.device(devices()[-1])
    n_train = 2000 if quick else None
    try:
        data = load_data("mnist", n_train, 1000 if quick else None, data_dir)
        x, y, xt, yt, source = data.x_train, data.y_train, data.x_test, data.y_test, data.source
    except (OSError, ValueError):  # no MNIST pack travelled: time random images of MNIST's shape
        n = n_train or 60000
        x, y = torch.randn(n, 1, 28, 28), torch.randint(0, 10, (n,))
        xt, yt, source = x[:10000], y[:10000], "random tensors of MNIST's shape (timing only)"
    r = RECIPES["reference"]
    net = r.build("mnist", 16, seed=42)
    train_iter = TensorLoader(x, y, 128, shuffle=True, seed=42, device=device)
    test_iter = TensorLoader(xt, yt, 1000, device=device)
    t0 = time.perf_counter()
    h = fit(net, train_iter, test_iter, 1, progress=False, device=device, **r.fit_options())
    seconds = time.perf_counter() - t0
    record = {"meta": meta(), "device": str(device), "data": source, "n_train": len(x), "epoch_s": seconds,
              "steps": len(train_iter), "step_ms": 1e3 * seconds / len(train_iter),
              "fifty_epochs_s_extrapolated": 50 * seconds, "test_acc_after_1_epoch": h["test_acc"][-1]}
    write(path, record)
    print(f"MNIST paper-scale QT: one epoch {seconds:.1f} s, 50 epochs ≈ {50 * seconds / 60:.1f} min", flush=True)
    return record


def cifar_seeds(out, deadline, quick, data_dir, epochs, min_left=60):
    """Stage 4: the CIFAR-10 seeds grid's improved QT runs at L = 95, each resumable, while time allows."""
    extra = ["--n-train", "200", "--n-test", "100", "--blocks", "2", "--batch-size", "100"] if quick else []
    done = []
    for grid_path, argv in commands("seeds", "cifar10", out, epochs=epochs, data_dir=data_dir, extra=extra,
                                    runs=["qt-improved-*"]):
        path = out / f"cifar10-seeds-{grid_path.stem}.json"
        ckpt = path.with_suffix(".pt")
        argv = argv[:argv.index("--json")] + ["--json", str(path)] + argv[argv.index("--json") + 2:]
        if path.exists():
            done.append(path.name)
            continue
        left = deadline - time.time()
        if left < min_left:
            print(f"stage 4: {left:.0f} s left, not starting {path.name}", flush=True)
            break
        argv += ["--checkpoint", str(ckpt)] + (["--resume"] if ckpt.exists() else [])
        with open(out / "cifar10-seeds.log", "a") as log:
            try:
                rc = subprocess.run([sys.executable, "-m", "qt_helpers", *argv], stdout=log, stderr=subprocess.STDOUT,
                                    timeout=max(left - 30, 1), cwd=ROOT).returncode
            except subprocess.TimeoutExpired:
                print(f"stage 4: {path.name} stopped at the time budget; {ckpt.name} resumes it", flush=True)
                break
        if rc == 0:
            done.append(path.name)
            ckpt.unlink(missing_ok=True)
        else:
            print(f"stage 4: {path.name} failed (exit {rc}); see cifar10-seeds.log", flush=True)
    print(f"stage 4: finished runs {done}", flush=True)
    return done


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, default=ROOT / "results/bench/gpu")
    p.add_argument("--budget-s", type=float, default=540, help="stop starting work after this many seconds")
    p.add_argument("--quick", action="store_true", help="tiny sizes: a check that every stage runs (CI, a CPU)")
    p.add_argument("--data-dir", default=None, help="folder with the data packs (default: $QT_DATA_DIR)")
    p.add_argument("--cifar-epochs", type=int, default=20)
    p.add_argument("--stages", type=int, nargs="+", default=[1, 2, 3, 4], choices=[1, 2, 3, 4],
                   help="which stages to run (e.g. 1 2 3 with the wheels, then 4 with the CIFAR-10 pack)")
    args = p.parse_args(argv)
    deadline = time.time() + args.budget_s
    args.out.mkdir(parents=True, exist_ok=True)
    configs = ["tiny"] if args.quick else ["mnist-16", "cifar10-38", "cifar10-95"]
    backends = ["torchquantum", "gatewise", "native"] + ([] if args.quick else ["pennylane"])
    repeats = 2 if args.quick else 5
    stages = [
        ("step-table.json", lambda path: step_table(path, configs, backends, 1, repeats)),
        ("compiled.json", lambda path: compiled(path, "tiny" if args.quick else "cifar10-95", repeats, args.quick)),
        ("mnist-epoch.json", lambda path: mnist_epoch(path, args.quick, args.data_dir)),
    ]
    for number, (name, stage) in enumerate(stages, 1):
        path = args.out / name
        if number not in args.stages:
            continue
        if path.exists() and name != "step-table.json":
            print(f"{name}: done before, skipped", flush=True)
            continue
        if time.time() > deadline:
            print(f"{name}: out of time, skipped", flush=True)
            continue
        t0 = time.perf_counter()
        stage(path)
        print(f"{name}: {time.perf_counter() - t0:.0f} s", flush=True)
    if 4 in args.stages:
        cifar_seeds(args.out, deadline, args.quick, args.data_dir, 1 if args.quick else args.cifar_epochs,
                    min_left=5 if args.quick else 60)
    return 0


if __name__ == "__main__":
    sys.exit(main())
