"""Time one full Quantum-Train training step per config × backend × device, side by side.

A step is what training does per batch: generate the CNN's weights (QNN →
probabilities → mapping model), run the CNN on the batch, backpropagate to the
QNN angles and the mapping model, and take an Adam step. Every row is the median
of `--repeats` steps after `--warmup` untimed ones, synchronised on the GPU; the
ratio column is TorchQuantum's step time on the same device, measured in this
same run, divided by the row's.

    python benchmarks/bench_step.py                       # the full table
    python benchmarks/bench_step.py --configs tiny --repeats 2 --json out.json

(`benchmarks/bench_step.py` runs `main` of this module.)
"""
import argparse
import statistics
import sys
import time

import torch

from qt_helpers import native
from qt_helpers.qnn import QNN
from qt_helpers.qt import qt_model
from qt_helpers.records import device_name, provenance, write_json
from qt_helpers.train import make_optimizer

from .notebook import markdown_table

CONFIGS = {  # name: (dataset, blocks, batch size)
    "tiny": ("mnist", 2, 32),
    "mnist-16": ("mnist", 16, 128),
    "cifar10-38": ("cifar10", 38, 1000),
    "cifar10-95": ("cifar10", 95, 1000),
}
BACKENDS = ("torchquantum", "gatewise", "pennylane", "native")


class GatewiseQNN(QNN):
    """Plain torch, one gate at a time: the baseline a straightforward rewrite gives."""

    backend = "gatewise"

    def forward(self):
        psi = native.simulate_gatewise(self.angles, self.n_qubits, self.ansatz.name)
        return torch.view_as_real(psi).square().sum(-1)


def build(config, backend, device, seed=0):
    """A QT model, a batch and an optimiser for one row of the table."""
    dataset, blocks, batch = CONFIGS[config]
    torch.manual_seed(seed)
    net = qt_model(dataset, blocks, backend="native" if backend == "gatewise" else backend, seed=seed)
    if backend == "gatewise":
        angles = net.qnn.angles
        net.qnn = GatewiseQNN(net.n_qubits, blocks, net.qnn.ansatz.name)
        net.qnn.angles = angles
    net.to(device)
    shape = (3, 32, 32) if dataset == "cifar10" else (1, 28, 28)
    x, y = torch.randn(batch, *shape, device=device), torch.randint(0, 10, (batch,), device=device)
    return net, x, y, make_optimizer(net)[0]


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn, warmup=0, repeats=1, device=None):
    """Wall seconds of each of `repeats` calls of `fn()` after `warmup` untimed ones (a CUDA `device` is
    synchronised before each clock reading): the one step timer of the benchmarks and chapter 6."""
    device = None if device is None else torch.device(device)
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        if device is not None:
            sync(device)
        t0 = time.perf_counter()
        fn()
        if device is not None:
            sync(device)
        times.append(time.perf_counter() - t0)
    return times


def time_steps(net, x, y, opt, device, warmup, repeats):
    """Median seconds of a training step, and peak GPU memory (MiB) or None."""
    loss_fn = torch.nn.CrossEntropyLoss()

    def step():
        opt.zero_grad(set_to_none=True)
        loss_fn(net(x), y).backward()
        opt.step()

    timed(step, warmup, 0, device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    times = timed(step, 0, repeats, device)
    peak = torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda" else None
    return statistics.median(times), peak




def run(configs, backends, devices, warmup, repeats, skip=(), skipped=None):
    """All rows of the table but the (config, backend, device) in `skip`, with ratios to TorchQuantum per
    (config, device); a backend that is not installed is left out, and why is added to the list `skipped`."""
    rows = []
    for device in map(torch.device, devices):
        for config in configs:
            for backend in backends:
                if (config, backend, device.type) in skip:
                    continue
                try:
                    seconds, peak = time_steps(*build(config, backend, device), device, warmup, repeats)
                except ImportError as e:
                    print(f"skipping {backend}: {e}", file=sys.stderr)
                    if skipped is not None and f"{backend}: {e}" not in skipped:
                        skipped.append(f"{backend}: {e}")
                    continue
                rows.append({"config": config, "backend": backend, "device": str(device),
                             "device_name": device_name(device), "step_ms": seconds * 1e3, "peak_mib": peak})
                print(f"  {config:<11} {backend:<12} {device}: {seconds * 1e3:9.2f} ms", file=sys.stderr, flush=True)
    for r in rows:
        ref = [q for q in rows
               if (q["config"], q["device"], q["backend"]) == (r["config"], r["device"], "torchquantum")]
        r["vs_torchquantum"] = ref[0]["step_ms"] / r["step_ms"] if ref else None
    return rows


def table(rows):
    """The rows as a Markdown table."""
    cells = [(r["config"], r["backend"], r["device"], f"{r['step_ms']:.2f}",
              f"{r['vs_torchquantum']:.1f}×" if r["vs_torchquantum"] else "–",
              f"{r['peak_mib']:.0f}" if r["peak_mib"] is not None else "–") for r in rows]
    return markdown_table(("config", "backend", "device", "step (ms)", "× TorchQuantum", "peak GPU MiB"), cells,
                          left=3)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--configs", nargs="+", default=["mnist-16", "cifar10-38", "cifar10-95"], choices=CONFIGS)
    p.add_argument("--backends", nargs="+", default=["torchquantum", "gatewise", "native"], choices=BACKENDS)
    p.add_argument("--devices", nargs="+", default=["cpu"] + (["cuda"] if torch.cuda.is_available() else []))
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--json", help="also write the rows and the machine's description here")
    args = p.parse_args(argv)
    rows = run(args.configs, args.backends, args.devices, args.warmup, args.repeats)
    print(table(rows))
    if args.json:
        meta = {**provenance(args.devices[0]), "cpu_threads": torch.get_num_threads(), "warmup": args.warmup,
                "repeats": args.repeats}
        write_json(args.json, {"meta": meta, "rows": rows})
    return rows


if __name__ == "__main__":
    main()
