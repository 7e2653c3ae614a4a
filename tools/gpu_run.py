"""The GPU numbers in one prepared run: everything the book needs from a rare, short GPU lease.

Stages, run in the order given by --stages; each writes its JSON under --out as soon as it exists, and a
stage whose JSON is already there is skipped, so a cut-off run loses at most the stage in flight:

1. `step-table.json`: one QT training step per config × backend × device (`qtbook.bench`), with peak
   GPU memory; the GPU's rows first, then the same machine's CPU; rows are appended as they finish.
2. `compiled.json`: the native step captured whole as a CUDA graph (`qt_helpers.cuda_graph.GraphedStep`, what
   `fit(cuda_graph=True)` replays), and under `torch.compile`, each against the eager step (MNIST-16, CIFAR-10
   at 38 and 95 blocks): kept only if faster and giving the same loss and gradients (relative difference
   ≤ 1e-4; the eager step against itself is recorded beside it). Runs in a child process with a time limit.
3. `mnist-epoch.json`: the MNIST chapter's paper-scale QT training (reference recipe, 60,000 images, batch
   128, 50 epochs), on a GPU with `fit(cuda_graph=True)`, timed: the whole run if it ends within
   --mnist-cap-s, else its finished epochs, extrapolated to 50.
4. `cifar10-runs.tar`: CIFAR-10 QT runs of the science grids (seeds at 95 blocks with the improved recipe,
   the tune grid's QT trials and, once they have all run, the protocol's QT runs, the block sweep's QT side,
   then the seeds' lr-cosine runs), --workers at a time on the one GPU, each
   resumable from its checkpoint; the runs already recorded in results/runs are skipped. The tar (records,
   logs, checkpoints of unfinished runs) is rewritten whenever a run ends: unpack it over build/gpu/runs.
   (The device tool brings back at most 8 files, at most 2 folders down.)

    make gpu-pack                                                     # here: wheels and the data packs
    make gpu GPU_ARGS="--stages 1 3 2"                                # there, with the wheels and MNIST
    make gpu GPU_ARGS="--stages 4"                                    # there, with the CIFAR-10 pack
    python tools/gpu_run.py --unpack $OUT/cifar10-runs.tar             # here again: record stage 4's runs
    python tools/gpu_run.py --out build/gpu-dry --quick --budget-s 60  # tiny sizes on a CPU (what CI runs)

The GPU machine has Python 3.12 and torch but no package index, and a call carries at most 64 MiB: the
TorchQuantum stack (about 24 MB of wheels) with MNIST, and the CIFAR-10 pack (56 MB), travel in two calls.

Without `pennylane` or `torchquantum` installed, their rows are skipped and say so.
"""
import argparse
import itertools
import json
import os
import statistics
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from qt_helpers.records import atomic_write, device_name, provenance  # noqa: E402
from qtbook import bench  # noqa: E402
from qtbook.executor import make_executor, train_job  # noqa: E402
from qtbook.experiments import commands, done, finished, run_key  # noqa: E402

RUNS_DIR = ROOT / "build/gpu/runs"  # stage 4's records while they run (bundled into --out); --runs-dir
CIFAR_QUEUE = tuple(("cifar10", grid, pattern) for grid, pattern in (
    ("seeds", "qt-improved-*"), ("tune", "qt-*"), ("protocol", "qt-chosen-*"), ("blocks", "qt-L*"),
    ("seeds", "qt-lr-cosine-*"), ("blocks", "qt-lr-cosine-L*")))  # stage 4's runs, most wanted first
# stage 5: the controls of QT at equal budget (qt_helpers.controls) and the budget CNN's standardised trials, then
# the protocol's CNN runs they may change, MNIST first; each with a CUDA graph per step (`--cuda-graph`)
CONTROL_QUEUE = tuple((dataset, grid, pattern) for dataset in ("mnist", "fashion_mnist") for grid, pattern in (
    ("tune", "cnn-budget-standardize-*"), ("control", "*-lr*"), ("protocol", "cnn-budget-*"), ("control", "*")))
STAGE_RUNS = {4: ("cifar10-runs.tar", CIFAR_QUEUE), 5: ("control-runs.tar", CONTROL_QUEUE)}


def write(path, record):
    """Write a JSON record atomically (a cut-off run never leaves half a file)."""
    atomic_write(path, json.dumps(record, indent=2, default=str))


def meta():
    """Where and when: device names, versions, date."""
    return {**provenance(devices()[0]), "cpu_threads": torch.get_num_threads(),
            "devices": {d: device_name(d) for d in devices()},
            "commit": os.environ.get("QT_COMMIT")}  # the GPU machine gets the tree without .git: `make gpu` passes it


def devices():
    """The GPU first (its rows matter most), then the same machine's CPU."""
    return (["cuda"] if torch.cuda.is_available() else []) + ["cpu"]


def step_table(path, configs, backends, warmup, repeats, deadline):
    """Stage 1: the step benchmark table, one row at a time; a row that fails is recorded, not fatal."""
    record = json.loads(path.read_text()) if path.exists() else {"meta": meta(), "rows": [], "skipped": []}
    record.setdefault("errors", [])
    have = {(r["config"], r["backend"], r["device"]) for r in record["rows"]}
    for device in devices():
        for config in configs:
            for backend in backends:
                slow = backend in ("torchquantum", "gatewise", "pennylane") and "cifar" in config
                if (config, backend, device) in have or (device == "cpu" and slow):
                    continue  # a gate-by-gate CIFAR-10 step takes minutes on a CPU: the GPU's time is worth more
                if time.time() > deadline:
                    record["skipped"].append(f"{config} {backend} {device}: out of time")
                    continue
                try:
                    rows = bench.run([config], [backend], [device], warmup, 3 if slow else repeats,
                                     skipped=record["skipped"])
                except Exception as e:  # one broken row must not cost the lease's other rows
                    record["errors"].append(f"{config} {backend} {device}: {type(e).__name__}: {str(e)[:300]}")
                    rows = []
                    if device == "cuda":
                        torch.cuda.empty_cache()
                record["rows"] += rows
                write(path, record)
    for r in record["rows"]:  # ratios against TorchQuantum on the same device, whichever ran
        ref = [q for q in record["rows"] if (q["config"], q["device"], q["backend"]) ==
               (r["config"], r["device"], "torchquantum")]
        r["vs_torchquantum"] = ref[0]["step_ms"] / r["step_ms"] if ref else None
    write(path, record)
    print(bench.table(record["rows"]), flush=True)
    for e in record["errors"]:
        print(f"  error: {e}", flush=True)
    return record


def rel_diff(grads_a, grads_b):
    """The largest relative difference ||a - b|| / ||b|| over the parameter tensors' gradients."""
    return max(((a - b).norm() / b.norm().clamp_min(1e-30)).item() for a, b in zip(grads_a, grads_b, strict=True))


def same_numbers(loss_a, grads_a, loss_b, grads_b, tol=1e-4):
    """True when two steps' losses and gradients agree to float32 round-off (relative, per tensor)."""
    return abs(loss_a - loss_b) <= tol * abs(loss_b) and rel_diff(grads_a, grads_b) <= tol


def eager_grads(net, x, y):
    """(loss, gradients) of one eager step of `net` at its current parameters."""
    net.zero_grad(set_to_none=True)
    loss = torch.nn.functional.cross_entropy(net(x), y)
    loss.backward()
    return loss.item(), [p.grad.clone() for p in net.parameters() if p.requires_grad]


def cuda_graph_step(config, device, repeats):
    """The whole training step (weights, CNN, backward, Adam) as one CUDA graph (`GraphedStep`, the path of
    `fit(cuda_graph=True)`), replayed: (median seconds, same numbers as eager?, the numbers compared)."""
    from qt_helpers.cuda_graph import GraphedStep

    net, x, y, opt = bench.build(config, "native", device)
    start = {k: v.clone() for k, v in net.state_dict().items()}
    loss_a, grads_a = eager_grads(net, x, y)
    _, grads_b = eager_grads(net, x, y)  # eager against itself: the GPU's own round-off
    step = GraphedStep(net, torch.nn.CrossEntropyLoss(), opt)
    step.capture(x, y)  # its warm-up is undone: the first replay starts from `start`
    assert all(torch.equal(v, start[k]) for k, v in net.state_dict().items())
    step.graph.replay()
    torch.cuda.synchronize()
    loss_g, grads_g = step.loss.item(), [g.clone() for g in step.grads]
    check = {"loss_eager": loss_a, "loss_graph": loss_g, "rel_diff_eager_eager": rel_diff(grads_b, grads_a),
             "rel_diff_graph_eager": rel_diff(grads_g, grads_a),
             "cudnn_allow_tf32": torch.backends.cudnn.allow_tf32,
             "matmul_allow_tf32": torch.backends.cuda.matmul.allow_tf32}
    times = bench.timed(step.graph.replay, 0, repeats, device)
    return statistics.median(times), same_numbers(loss_g, grads_g, loss_a, grads_a), check


def compiled_step(config, device, repeats, quick):
    """The step with the QT model under torch.compile (inductor; the eager backend in --quick)."""
    net, x, y, opt = bench.build(config, "native", device)
    model = torch.compile(net, backend="eager" if quick else "inductor")
    t0 = time.perf_counter()
    loss_c, grads_c = eager_grads(model, x, y)
    compile_s = time.perf_counter() - t0
    same = same_numbers(loss_c, grads_c, *eager_grads(net, x, y))
    return bench.time_steps(model, x, y, opt, device, 1, repeats)[0], same, compile_s


def compiled(path, variants, configs, repeats, quick):
    """Stage 2 (in a child process): CUDA graph and torch.compile variants of the native step, each kept only
    if it is faster than the eager step and gives the same numbers; the record is rewritten after each."""
    device = torch.device(devices()[0])
    record = {"meta": meta(), "device": str(device), "rows": []}
    eager = {}
    for variant in variants:  # every config's graph first: compiling may take minutes
        for config in configs:
            if config not in eager:
                net, x, y, opt = bench.build(config, "native", device)
                eager[config] = bench.time_steps(net, x, y, opt, device, 1, repeats)[0]
            eager_s = eager[config]
            row = {"config": config, "variant": variant, "eager_ms": eager_s * 1e3}
            try:
                if variant == "cuda-graph":
                    if device.type != "cuda":
                        msg = "CUDA graphs need a CUDA GPU"
                        raise RuntimeError(msg)
                    seconds, same, row["check"] = cuda_graph_step(config, device, repeats)
                else:
                    seconds, same, row["compile_s"] = compiled_step(config, device, repeats, quick)
                row.update(ms=seconds * 1e3, same_numbers=same, speedup=eager_s / seconds,
                           kept=same and seconds < eager_s)
            except Exception as e:  # a variant that cannot handle the step is a finding
                row.update(error=f"{type(e).__name__}: {str(e)[:300]}", kept=False)
            record["rows"].append(row)
            write(path, record)
            print(f"  {config} {variant}: {row}", flush=True)
    return record


class TimeUp(Exception):
    """Raised from a training callback when a stage's time is spent."""


def extrapolate(t0, starts, num_epochs):
    """(seconds of each finished epoch, the whole run's seconds extrapolated) of a run started at `t0` whose
    epoch e's first step ended at `starts[e]`: the first epoch plus the median later epoch for each other."""
    edges = [t0, *starts[1:]]  # an epoch ends when the next one's first step ends (its test included)
    epochs = [b - a for a, b in itertools.pairwise(edges)]
    if not epochs:
        msg = "not one MNIST epoch finished in the stage's time; give it more (--mnist-cap-s)"
        raise RuntimeError(msg)
    return epochs, epochs[0] + (num_epochs - 1) * statistics.median(epochs[1:] or epochs)


def mnist_run(path, quick, data_dir, stop_at):
    """Stage 3: the MNIST chapter's paper-scale QT training, whole if it ends by `stop_at`, else its finished
    epochs timed and extrapolated to all of them."""
    from qt_helpers.data import TensorLoader, load_data
    from qt_helpers.recipes import RECIPES
    from qt_helpers.train import fit

    device = torch.device(devices()[0])
    num_epochs, n_train = (2, 2000) if quick else (50, None)
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
    starts = []  # when each epoch's first step ended

    def on_step(epoch, _step, _loss):
        if len(starts) == epoch:
            starts.append(time.perf_counter())
        if time.time() > stop_at:
            raise TimeUp

    t0 = time.perf_counter()
    record = {"meta": meta(), "device": str(device), "data": source, "n_train": len(x), "recipe": "reference",
              "blocks": 16, "num_epochs": num_epochs, "steps_per_epoch": len(train_iter),
              "cuda_graph": device.type == "cuda"}
    try:
        h = fit(net, train_iter, test_iter, num_epochs, progress=False, device=device, on_step=on_step,
                log_epochs=False, cuda_graph=device.type == "cuda", **r.fit_options())
        seconds = time.perf_counter() - t0
        record.update(whole_run=True, seconds=seconds, epoch_s=h["seconds"], test_acc=h["test_acc"][-1],
                      best_test_acc=max(h["test_acc"]), test_acc_per_epoch=h["test_acc"])
    except TimeUp:
        epochs, seconds = extrapolate(t0, starts, num_epochs)
        record.update(whole_run=False, epochs_finished=len(epochs), epoch_s=epochs, seconds=seconds,
                      extrapolated="first epoch + (num_epochs - 1) × the median later epoch")
    record["step_ms"] = 1e3 * statistics.median(record["epoch_s"][1:] or record["epoch_s"]) / len(train_iter)
    write(path, record)
    how = "measured" if record["whole_run"] else f"extrapolated from {record['epochs_finished']} epochs"
    print(f"MNIST paper-scale QT, {num_epochs} epochs: {seconds / 60:.1f} min ({how})", flush=True)
    return record


def bundle(out, runs_dir, name="cifar10-runs.tar"):
    """A stage's records, logs and checkpoints as one tar in --out (rewritten atomically)."""
    tmp = out / f"{name}.tmp"
    with tarfile.open(tmp, "w") as tar:
        for f in sorted(runs_dir.rglob("*")):
            if f.is_file():
                tar.add(f, arcname=str(f.relative_to(runs_dir)))
    tmp.replace(out / name)


def cifar_queue(runs_dir, quick, data_dir, epochs, spec=CIFAR_QUEUE):
    """[(json path, train argv)] of stage 4 (or 5): the `spec`'s runs not yet recorded in results/runs, each once."""
    extra = ["--n-train", "200", "--n-test", "100", "--blocks", "2", "--batch-size", "100"] if quick else []
    extra += ["--cuda-graph"] if torch.cuda.is_available() and spec is CONTROL_QUEUE else []
    queue, keys = [], set(finished(ROOT / "results/runs")) if spec is CONTROL_QUEUE and not quick else set()
    if spec is CONTROL_QUEUE and "--cuda-graph" in extra:  # first, a recorded CPU run again with the graph: a check
        path, argv = commands("protocol", "mnist", runs_dir, extra=extra, runs=["qt-chosen-seed42"])[0]
        path = runs_dir / "mnist/gpu-check" / path.name
        argv[argv.index("--json") + 1] = str(path)
        if not done(path, argv):
            queue.append((path, argv))
    for dataset, grid, pattern in spec:
        try:
            cmds = commands(grid, dataset, runs_dir, epochs=epochs, data_dir=data_dir, extra=extra, runs=[pattern])
        except ValueError:  # the protocol's choice waits for its tune trials; the queue is read again later
            continue
        for path, argv in cmds:
            key = run_key(argv)
            recorded = ROOT / "results/runs" / path.relative_to(runs_dir)
            if key in keys or (not quick and done(recorded, argv)) or done(path, argv):
                continue
            keys.add(key)
            queue.append((path, argv))
    return queue


def cifar_runs(out, runs_dir, deadline, quick, data_dir, epochs, workers, min_left, stage=4):
    """Stage 4 (or 5): the queue's runs, `workers` at a time, started while at least `min_left` s remain and
    stopped (their checkpoints kept) at the deadline."""
    tar_name, spec = STAGE_RUNS[stage]
    if stage == 5:  # the grids choose from the recorded trials: they travel with the tree, copied to `runs_dir`
        for dataset, grid in {(d, g) for d, _, _ in spec for g in ("tune", "control")}:
            for src in sorted((ROOT / "results/runs" / dataset / grid).glob("*.json")):
                dst = runs_dir / src.relative_to(ROOT / "results/runs")
                if not dst.exists():
                    dst.parent.mkdir(parents=True, exist_ok=True)
                    dst.write_text(src.read_text())
    queue = cifar_queue(runs_dir, quick, data_dir, epochs, spec)
    print(f"stage {stage}: {len(queue)} runs to do, {workers} at a time", flush=True)
    threads = max(1, (os.cpu_count() or 1) // workers)
    ex = make_executor("local", workers)  # the grids' executor: a fresh process per run, `workers` at a time
    running, finished, begun = {}, [], set()
    try:
        while queue or running:
            while queue and len(running) < workers and deadline - time.time() > min_left:
                path, argv = queue.pop(0)
                begun.add(path)
                ckpt = path.with_suffix(".pt")
                argv = argv + ["--checkpoint", str(ckpt)] + (["--resume"] if ckpt.exists() else ["--overwrite"])
                running[ex.submit(train_job, argv, path.with_suffix(".log"), threads)] = (path, time.time())
                print(f"stage {stage}: started {path.relative_to(runs_dir)}", flush=True)
            if not running:
                print(f"stage {stage}: {deadline - time.time():.0f} s left, not starting {len(queue)} more runs",
                      flush=True)
                break
            time.sleep(1 if quick else 5)
            for future in [f for f in running if f.done()]:
                path, started = running.pop(future)
                name = path.relative_to(runs_dir)
                rc = future.result() if future.exception() is None else f"{type(future.exception()).__name__}"
                if rc == 0:
                    finished.append(str(name))
                    path.with_suffix(".pt").unlink(missing_ok=True)
                    print(f"stage {stage}: finished {name} in {time.time() - started:.0f} s", flush=True)
                else:
                    print(f"stage {stage}: {name} failed (exit {rc}); see its .log", flush=True)
                bundle(out, runs_dir, tar_name)
                known = {p for p, _ in queue} | begun  # a finished run may make new ones possible (the protocol's)
                queue += [(p, a) for p, a in cifar_queue(runs_dir, quick, data_dir, epochs, spec)
                          if p not in known]
            if time.time() > deadline:
                ex.stop()  # the running runs end as after Ctrl-C: their finished epochs stay in their checkpoints
                for path, _ in running.values():
                    print(f"stage {stage}: stopped {path.relative_to(runs_dir)} at the deadline; its checkpoint "
                          "resumes it", flush=True)
                running = {}
                break
    finally:
        ex.shutdown()
    bundle(out, runs_dir, tar_name)
    print(f"stage {stage}: finished runs {finished}", flush=True)
    return finished


def unpack(tar_path, runs_dir, results=ROOT / "results/runs"):
    """Here, after the lease: stage 4's tar unpacked into `runs_dir`, and each finished run's record copied into
    the grids' results (an identical command's second grid name, e.g. the block sweep's qt-L95 and the seeds'
    qt-improved-seed42, gets a copy naming the first); records already there are kept, never replaced."""
    from qtbook.experiments import copy_run, read_record

    with tarfile.open(tar_path) as tar:
        tar.extractall(runs_dir, filter="data")
    found = {}
    for path in sorted(runs_dir.glob("*/*/*.json")):
        record = read_record(path)
        if record is None:
            continue
        found[record[1]] = path
        dst = results / path.relative_to(runs_dir)
        if dst.exists():
            print(f"kept {dst} (already there)")
            continue
        dst.parent.mkdir(parents=True, exist_ok=True)
        for src in (path, path.with_suffix(".log")):  # the record and its log, beside the grid's others
            if src.exists():
                atomic_write(dst.with_suffix(src.suffix), src.read_bytes())
        print(f"recorded {dst}")
    for name, dataset in (("seeds", "cifar10"), ("blocks", "cifar10"), ("control", "mnist"),
                          ("control", "fashion_mnist")):
        try:
            cmds = commands(name, dataset, results, epochs=None)
        except ValueError:  # a grid that chooses from trials not recorded here (the control grid's): no copies
            continue
        for path, argv in cmds:
            key = run_key(argv)
            if key in found and not path.exists():
                copy_run(results / found[key].relative_to(runs_dir), path)
                print(f"recorded {path} (the same run as {found[key].relative_to(runs_dir)})")
    unfinished = {}  # runs the lease stopped: their histories so far, from their checkpoints (never in the grids)
    for ckpt in sorted(runs_dir.glob("cifar10/*/*.pt")):
        state = torch.load(ckpt, map_location="cpu", weights_only=True)
        unfinished[ckpt.relative_to(runs_dir).with_suffix("").as_posix()] = {
            "identity": state["identity"], "history": state["history"]}
    if unfinished:
        path = ROOT / "results/bench/gpu/cifar10-unfinished.json"
        write(path, {"note": "CIFAR-10 runs stopped by the end of a GPU lease: per-epoch histories so far; "
                             "not finished runs, so no grid counts them", "runs": unfinished})
        print(f"wrote {path} ({len(unfinished)} unfinished runs)")


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, default=ROOT / "results/bench/gpu")
    p.add_argument("--budget-s", type=float, default=540, help="stop starting work after this many seconds")
    p.add_argument("--quick", action="store_true", help="tiny sizes: a check that every stage runs (CI, a CPU)")
    p.add_argument("--data-dir", default=None, help="folder with the data packs (default: $QT_DATA_DIR)")
    p.add_argument("--cifar-epochs", type=int, default=None, help="epochs of stage 4's runs (default: the grids')")
    p.add_argument("--workers", type=int, default=3, help="stage 4's runs at a time on the one GPU")
    p.add_argument("--mnist-cap-s", type=float, default=150, help="stage 3's longest time before extrapolating")
    p.add_argument("--stages", type=int, nargs="+", default=[1, 3, 2, 4], choices=[1, 2, 3, 4, 5],
                   help="which stages to run, in this order (e.g. 1 3 2 with the wheels, then 4 with CIFAR-10)")
    p.add_argument("--runs-dir", type=Path, default=RUNS_DIR, help="stage 4's runs while they run")
    p.add_argument("--unpack", type=Path, metavar="TAR", help="here, after the lease: record stage 4's runs "
                   "from the tar it brought back (into --runs-dir and results/runs), then stop")
    p.add_argument("--variants", nargs="+", default=["cuda-graph", "torch.compile"],
                   choices=["cuda-graph", "torch.compile"], help="stage 2's variants of the step")
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)  # stage 2 inside its time limit
    args = p.parse_args(argv)
    if args.unpack:
        unpack(args.unpack, args.runs_dir)
        return 0
    deadline = time.time() + args.budget_s
    args.out.mkdir(parents=True, exist_ok=True)
    configs = ["tiny"] if args.quick else ["mnist-16", "cifar10-38", "cifar10-95"]
    backends = ["torchquantum", "gatewise", "native"] + ([] if args.quick else ["pennylane"])
    repeats = 2 if args.quick else 5
    if args.child:
        configs = ["tiny"] if args.quick else ["mnist-16", "cifar10-38", "cifar10-95"]
        compiled(args.out / "compiled.json", args.variants, configs, repeats, args.quick)
        return 0
    stages = {
        1: ("step-table.json", lambda path: step_table(path, configs, backends, 1, repeats, deadline)),
        2: ("compiled.json", lambda path: run_child(path, args, deadline)),
        3: ("mnist-epoch.json", lambda path: mnist_run(path, args.quick, args.data_dir,
                                                      min(deadline, time.time() + args.mnist_cap_s))),
    }
    for number in args.stages:
        if number in (4, 5):
            cifar_runs(args.out, args.runs_dir, deadline, args.quick, args.data_dir,
                       1 if args.quick else args.cifar_epochs if number == 4 else None, args.workers,
                       5 if args.quick else 60 if number == 4 else 20, number)
            continue
        name, stage = stages[number]
        path = args.out / name
        if path.exists() and name != "step-table.json":
            print(f"{name}: done before, skipped", flush=True)
            continue
        if time.time() > deadline:
            print(f"{name}: out of time, skipped", flush=True)
            continue
        t0 = time.perf_counter()
        try:
            stage(path)
        except Exception as e:  # the next stages still get their turn
            print(f"{name}: FAILED: {type(e).__name__}: {str(e)[:300]}", flush=True)
        print(f"{name}: {time.perf_counter() - t0:.0f} s", flush=True)
    return 0


def run_child(path, args, deadline):
    """Stage 2 in a child process, stopped at the deadline (what it wrote by then is kept)."""
    argv = [sys.executable, __file__, "--child", "--out", str(args.out), "--variants", *args.variants] + \
        ["--quick"] * args.quick
    try:
        subprocess.run(argv, timeout=max(deadline - time.time(), 10), check=False)
    except subprocess.TimeoutExpired:
        record = json.loads(path.read_text()) if path.exists() else {"meta": meta(), "rows": []}
        record["stopped"] = "at the time budget"
        write(path, record)
        print("compiled.json: stopped at the time budget", flush=True)


if __name__ == "__main__":
    sys.exit(main())
