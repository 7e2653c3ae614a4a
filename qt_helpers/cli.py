"""Command line: `python -m qt_helpers train ...` trains a QT or classical model and reports it."""
import argparse
import json
import platform
import shlex
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import torch

from .circuits import ANSATZE, INITS
from . import experiments
from .data import DATASETS, load_loaders, resolve_name
from .models import budget_cnn, cnn, num_params
from .qnn import BACKENDS
from .qt import ACTIVATIONS, PRESETS, qt_model
from .train import SCHEDULES, device_name, fit, get_device, set_seed

MODELS = ("qt", "classical")


def build_parser():
    """The argument parser of `python -m qt_helpers`."""
    p = argparse.ArgumentParser(prog="python -m qt_helpers", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)
    t = sub.add_parser("train", help="train a QT or classical model on a dataset")
    t.add_argument("--dataset", default="mnist", help=f"one of {', '.join(DATASETS)}")
    t.add_argument("--model", default="qt", help=f"one of {', '.join(MODELS)}")
    t.add_argument("--backend", default="native", help=f"QNN backend, one of {', '.join(BACKENDS)}")
    t.add_argument("--ansatz", default="u3cu3", help=f"QNN ansatz, one of {', '.join(ANSATZE)}")
    t.add_argument("--preset", default="reference", help=f"QT recipe, one of {', '.join(PRESETS)}")
    t.add_argument("--blocks", type=int, default=16, help="QNN blocks L")
    t.add_argument("--qubits", type=int, default=None, help="qubits (default: ceil(log2 M))")
    t.add_argument("--activation", default=None, help=f"mapping-model activation: {', '.join(ACTIVATIONS)}")
    t.add_argument("--trainable-transform", action="store_true", help="train gamma, beta, alpha too")
    t.add_argument("--standardize", action="store_true",
                   help="weight standardisation of the generated weights, one trained scale per tensor")
    t.add_argument("--init", default=None,
                   help=f"QNN angle initialisation, one of {', '.join(INITS)} (default: the ansatz's original)")
    t.add_argument("--shots", type=int, default=None,
                   help="estimate the QNN's probabilities from this many measurement shots (default: exact)")
    t.add_argument("--relu", action="store_true", help="CNN with ReLUs (the reference has none)")
    t.add_argument("--budget", type=int, default=None,
                   help="classical model: the reference CNN made narrower to at most this many parameters")
    t.add_argument("--epochs", type=int, default=1)
    t.add_argument("--batch-size", type=int, default=None, help="default: 128, CIFAR-10 1000")
    t.add_argument("--lr", type=float, default=None, help="default: QT 1e-4, classical 1e-3")
    t.add_argument("--schedule", default="plateau",
                   help=f"learning-rate schedule, one of {', '.join(SCHEDULES)} (the reference: plateau)")
    t.add_argument("--n-train", type=int, default=None, help="class-balanced training subset (default: all)")
    t.add_argument("--n-test", type=int, default=None, help="class-balanced test subset (default: all)")
    t.add_argument("--data-dir", default=None, help="folder with <dataset>.npz packs (default: $QT_DATA_DIR)")
    t.add_argument("--device", default="auto", help="auto, cpu, cuda, ...")
    t.add_argument("--seed", type=int, default=42)
    t.add_argument("--checkpoint", default=None, help="checkpoint file written after every epoch")
    t.add_argument("--resume", action="store_true", help="continue from --checkpoint")
    t.add_argument("--json", default=None, help="write the results to this JSON file")
    t.add_argument("--export", default=None, help="save the trained CNN's state_dict (plain torch) here")
    t.add_argument("--no-progress", action="store_true", help="no progress bar")
    experiments.add_parser(sub)
    return p


def choose(value, valid, what):
    """`value` if it is in `valid`, else exit with the valid choices."""
    if value not in valid:
        raise SystemExit(f"error: unknown {what} {value!r}; choose one of: {', '.join(valid)}")
    return value


def format_table(rows):
    """Two-column text table of (name, value) rows."""
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"  {k:<{width}}  {v:>12}" for k, v in rows)


def build_model(args):
    """The QT or classical model the arguments ask for, and its parameter rows."""
    if args.model == "classical":
        try:
            net = cnn(args.dataset, args.relu) if args.budget is None else budget_cnn(args.dataset, args.budget,
                                                                                       args.relu)
        except ValueError as e:
            raise SystemExit(f"error: {e}") from None
        return net, {"cnn_params": num_params(net), "qt_params": None, "qubits": None}
    if args.budget is not None:
        raise SystemExit("error: --budget is for --model classical; a QT model's size is set by --blocks")
    options = {}
    if args.activation is not None:
        options["activation"] = choose(args.activation, tuple(ACTIVATIONS), "activation")
    if args.trainable_transform:
        options["trainable_transform"] = True
    if args.standardize:
        options["standardize"] = True
    if args.init is not None:
        options["init"] = choose(args.init, INITS, "init")
    if args.shots is not None:
        if args.shots < 1:
            raise SystemExit(f"error: --shots must be a positive number of measurements, not {args.shots}")
        options["shots"] = args.shots
    try:
        net = qt_model(args.dataset, args.blocks, args.backend, args.ansatz, args.preset, relu=args.relu,
                       seed=args.seed, n_qubits=args.qubits, **options)
    except (ValueError, ImportError) as e:
        raise SystemExit(f"error: {e}") from None
    return net, net.param_table()


def print_params(info):
    """Print the parameter table of a model."""
    if info["qt_params"] is None:
        rows = [("CNN parameters (all trained)", f"{info['cnn_params']:,}")]
    else:
        rows = [("CNN parameters (generated)", f"{info['cnn_params']:,}"), ("qubits", info["qubits"]),
                ("QNN blocks", info["blocks"]), ("QNN angles", f"{info['qnn_params']:,}"),
                ("mapping-model parameters", f"{info['mapping_params']:,}"),
                ("QT trainable parameters", f"{info['qt_params']:,}"),
                ("QT / CNN", f"{info['ratio']:.2%}")]
    print(format_table(rows), flush=True)


def train(args, argv=None):
    """The `train` command; `argv` (its arguments) is recorded in the JSON as the command that reproduces it."""
    try:
        args.dataset = resolve_name(args.dataset)
    except ValueError as e:
        raise SystemExit(f"error: {e}") from None
    choose(args.model, MODELS, "model")
    choose(args.backend, BACKENDS, "backend")
    choose(args.ansatz, ANSATZE, "ansatz")
    choose(args.schedule, SCHEDULES, "schedule")
    set_seed(args.seed)
    device = get_device(args.device)
    batch_size = args.batch_size or (1000 if args.dataset == "cifar10" else 128)
    lr = args.lr or (1e-4 if args.model == "qt" else 1e-3)
    t0 = time.perf_counter()
    train_loader, test_loader, data = load_loaders(args.dataset, batch_size, args.n_train, args.n_test,
                                                   args.data_dir, args.seed, device)
    load_seconds = time.perf_counter() - t0
    print(f"{args.dataset}: {len(data.y_train):,} train / {len(data.y_test):,} test images from {data.source} "
          f"({load_seconds:.1f} s)")
    net, info = build_model(args)
    label = "classical CNN" if args.model == "classical" else f"QT ({args.backend}, {args.ansatz})"
    print(f"{label} on {device}:")
    print_params(info)
    t0 = time.perf_counter()
    history = fit(net, train_loader, test_loader, args.epochs, lr=lr, schedule=args.schedule, device=device,
                  checkpoint=args.checkpoint, resume=args.resume, progress=not args.no_progress)
    train_seconds = time.perf_counter() - t0
    test_loss, test_acc = history["test_loss"][-1], history["test_acc"][-1]
    print(f"test accuracy: {test_acc:.4f} (loss {test_loss:.4f}) on {len(data.y_test):,} images; "
          f"training took {train_seconds:.1f} s")
    if args.export:
        plain = net.export() if hasattr(net, "export") else net
        torch.save(plain.state_dict(), args.export)
        print(f"exported the CNN's weights to {args.export}")
    if args.json:
        result = {"dataset": args.dataset, "model": args.model,
                  "backend": args.backend if args.model == "qt" else None,
                  "ansatz": args.ansatz if args.model == "qt" else None, "preset": args.preset,
                  "blocks": args.blocks if args.model == "qt" else None, **info,
                  "recipe": {k: getattr(args, k) for k in ("activation", "trainable_transform", "standardize",
                                                           "init", "shots", "relu", "schedule", "budget")},
                  "test_accuracy": test_acc, "test_loss": test_loss, "train_seconds": train_seconds,
                  "load_seconds": load_seconds, "device": str(device),
                  "device_name": device_name(device),
                  "epochs": args.epochs, "batch_size": batch_size, "lr": lr, "seed": args.seed,
                  "n_train": len(data.y_train), "n_test": len(data.y_test), "data_source": data.source,
                  "history": history, "torch": torch.__version__, "python": platform.python_version(),
                  "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                  "command": None if argv is None else shlex.join(["python", "-m", "qt_helpers", *argv])}
        Path(args.json).write_text(json.dumps(result, indent=2))
        print(f"wrote {args.json}")
    return history


def main(argv=None):
    """Entry point of `python -m qt_helpers` and the `qt-helpers` script."""
    argv = sys.argv[1:] if argv is None else list(argv)
    args = build_parser().parse_args(argv)
    if args.command == "experiment":
        return experiments.main(args)
    train(args, argv)
    return 0


if __name__ == "__main__":
    sys.exit(main())
