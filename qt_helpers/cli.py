"""Command line: `python -m qt_helpers train ...` trains a QT or classical model and reports it.

Every argument is checked before any data is loaded or any training starts; a mistake ends in one line,
`error: ...`, and exit code 2 (`--debug` shows the traceback instead).
"""
import argparse
import math
import os
import platform
import shlex
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import torch

from . import __version__
from .circuits import ANSATZE, INITS, get_ansatz, n_qubits_for
from .data import DATASETS, DataNotFoundError, load_loaders, resolve_name
from .controls import CONTROLS, control_model, param_rows, param_table
from .limits import check_memory, run_bytes
from .models import budget_cnn, cnn, num_params, standardize_weights
from .qnn import BACKENDS
from .qt import ACTIVATIONS, PRESETS, qt_model
from .recipes import RECIPES
from .records import atomic_write, data_pack, write_json
from .train import (SCHEDULES, Diverged, check_fit_args, checkpoint_epochs, device_name, evaluate, fit, get_device,
                    set_seed)

MODELS = ("qt", "classical")
FULL_SIZES = {"mnist": (60000, 10000), "fashion_mnist": (60000, 10000), "cifar10": (50000, 10000)}
USER_ERRORS = (ValueError, DataNotFoundError, FloatingPointError, ImportError, OSError, MemoryError)


class UsageError(ValueError):
    """A command-line mistake; its message is the one line the CLI prints."""


class Parser(argparse.ArgumentParser):
    """argparse, but a mistake is one line `error: ...` and exit code 2 (no usage block)."""

    def error(self, message):
        self.exit(2, f"error: {message} (see {self.prog} --help)\n")


TEST_WHEN = ("epochs", "end", "never")
# where and how, not what (a --recipe is applied to the other arguments; a CUDA graph replays the same step)
OUTPUT_ARGS = ("json", "no_progress", "data_dir", "checkpoint", "resume", "export", "overwrite", "debug",
               "command", "recipe", "cuda_graph")


def build_parser():
    """The argument parser of `python -m qt_helpers`."""
    p = Parser(prog="python -m qt_helpers", description=__doc__)
    p.add_argument("--debug", action="store_true", help="show the traceback of an error")
    sub = p.add_subparsers(dest="command", required=True, parser_class=Parser)
    t = sub.add_parser("train", help="train a QT or classical model on a dataset")
    t.add_argument("--recipe", default=None,
                   help=f"a named recipe ({', '.join(RECIPES)}): its options are the defaults of the ones below")
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
    t.add_argument("--control", default=None, help=f"a control of the QT model at its budget, one of "
                   f"{', '.join(CONTROLS)} (qt_helpers.controls)")
    t.add_argument("--budget", type=int, default=None,
                   help="classical model: the reference CNN made narrower to at most this many parameters")
    t.add_argument("--epochs", type=int, default=1)
    t.add_argument("--batch-size", type=int, default=None, help="default: 128, CIFAR-10 1000")
    t.add_argument("--lr", type=float, default=None, help="default: QT 1e-4, classical 1e-3")
    t.add_argument("--schedule", default="plateau",
                   help=f"learning-rate schedule, one of {', '.join(SCHEDULES)} (the reference: plateau)")
    t.add_argument("--n-train", type=int, default=None, help="class-balanced training subset (default: all)")
    t.add_argument("--n-test", type=int, default=None, help="class-balanced test subset (default: all)")
    t.add_argument("--val-fraction", type=float, default=0.0,
                   help="carve a class-balanced validation split of this fraction from the training set (the same "
                        "for every seed) and record its accuracy every epoch (default: none)")
    t.add_argument("--test", default="epochs", help="when the test set is read: epochs (after every epoch, "
                   "for curves), end (once, after training) or never (choices made on --val-fraction alone)")
    t.add_argument("--data-dir", default=None, help="folder with <dataset>.npz packs (default: $QT_DATA_DIR)")
    t.add_argument("--device", default="auto", help="auto, cpu, cuda, ...")
    t.add_argument("--cuda-graph", action="store_true",
                   help="on a CUDA GPU: replay each training step from one captured CUDA graph (chapter 6)")
    t.add_argument("--seed", type=int, default=42)
    t.add_argument("--checkpoint", default=None, help="checkpoint file written after every epoch")
    t.add_argument("--resume", action="store_true", help="continue from --checkpoint (it must exist)")
    t.add_argument("--overwrite", action="store_true",
                   help="replace an existing --checkpoint, --json or --export file (never done without it)")
    t.add_argument("--json", default=None, help="write the results to this JSON file")
    t.add_argument("--export", default=None, help="save the trained CNN's state_dict (plain torch) here")
    t.add_argument("--no-progress", action="store_true", help="no progress bar")
    sub.add_parser("experiment", add_help=False, help="moved: python -m qt_helpers.science.experiments"
                   ).add_argument("rest", nargs=argparse.REMAINDER)
    return p


def choose(value, valid, what):
    """`value` if it is in `valid`, else a UsageError listing the valid choices."""
    if value not in valid:
        raise UsageError(f"unknown {what} {value!r}; choose one of: {', '.join(valid)}")
    return value


def at_least(value, low, flag, what="a whole number"):
    """Check that an optional number is >= `low`."""
    if value is not None and value < low:
        raise UsageError(f"{flag} must be {what} >= {low}, got {value}")


def writable(path, flag, overwrite):
    """Check before any work that `path` can be written: its folder exists and is writable, and an existing
    file is replaced only with --overwrite."""
    if path is None:
        return
    path = Path(path)
    if path.is_dir():
        raise UsageError(f"{flag} {path} is a folder; give a file name")
    if not path.parent.is_dir():
        raise UsageError(f"{flag} {path}: folder {path.parent} does not exist; create it first")
    if not os.access(path.parent, os.W_OK):
        raise UsageError(f"{flag} {path}: folder {path.parent} is not writable")
    if path.exists() and not overwrite:
        raise UsageError(f"{flag} {path} already exists; pass --overwrite to replace it, or choose another name")


def distinct_outputs(args):
    """Refuse two outputs of one run at one path (one would silently replace the other)."""
    seen = {}
    for flag in ("--json", "--export", "--checkpoint"):
        path = getattr(args, flag[2:])
        if path is not None:
            key = os.path.realpath(path)
            if key in seen:
                raise UsageError(f"{seen[key]} and {flag} are the same file {path}; give each output its own name")
            seen[key] = flag


def check_size(args):
    """Upper limits before any work: QT's QNN no larger than the CNN it generates, and the run's estimated
    memory (qt_helpers.limits) within what this machine has available."""
    m = num_params(cnn(args.dataset, args.relu))
    n = None
    if args.model == "qt":
        n = args.qubits or n_qubits_for(m)
        angles = args.blocks * get_ansatz(args.ansatz).angles_per_block(n)
        if angles > m:
            top = m // get_ansatz(args.ansatz).angles_per_block(n)
            raise UsageError(f"--blocks {args.blocks:,} gives the QNN {angles:,} angles, more than the {m:,} weights "
                             f"of the CNN it generates; use at most {top:,} blocks here (or --model classical)")
    images = None if args.n_train is None else args.n_train + (args.n_test or 10000)
    try:
        check_memory(run_bytes(args.dataset, n, args.blocks, args.batch_size or 128, images),
                     f"this run ({args.dataset}" + (f", {n} qubits, {args.blocks:,} blocks)" if n else ")"))
    except MemoryError as e:
        raise UsageError(f"{e}; use fewer qubits or blocks, a data subset (--n-train), or a larger machine") from None


def apply_recipe(args):
    """Fill the options a named --recipe sets, where the command line left them at their defaults."""
    if args.recipe is None:
        return
    r = RECIPES[choose(args.recipe, tuple(RECIPES), "recipe")]
    if r.model == "classical":
        args.model = "classical"
    if args.activation is None and r.activation != "none":
        args.activation = r.activation
    args.standardize = args.standardize or "standardize" in r.options(args.dataset)
    args.lr = r.lr if args.lr is None else args.lr
    args.schedule = r.schedule if args.schedule == "plateau" else args.schedule


def check_args(args):
    """Check every `train` argument before any work (raises UsageError); fills in the dataset's defaults."""
    try:
        args.dataset = resolve_name(args.dataset)
    except ValueError as e:
        raise UsageError(str(e)) from None
    apply_recipe(args)
    choose(args.model, MODELS, "model")
    choose(args.backend, BACKENDS, "backend")
    choose(args.ansatz, ANSATZE, "ansatz")
    choose(args.schedule, SCHEDULES, "schedule")
    choose(args.preset, tuple(PRESETS), "preset")
    if args.activation is not None:
        choose(args.activation, tuple(ACTIVATIONS), "activation")
    if args.init is not None:
        choose(args.init, INITS, "init")
    for flag, value in (("--epochs", args.epochs), ("--blocks", args.blocks), ("--batch-size", args.batch_size),
                        ("--n-train", args.n_train), ("--n-test", args.n_test), ("--budget", args.budget)):
        at_least(value, 1, flag)
    if args.shots is not None and args.shots < 1:
        raise UsageError(f"--shots must be a positive number of measurements, not {args.shots}")
    at_least(args.qubits, 2, "--qubits")
    for flag, value, full in zip(("--n-train", "--n-test"), (args.n_train, args.n_test), FULL_SIZES[args.dataset]):
        if value is not None and value > full:
            raise UsageError(f"{flag} {value:,} is more than {args.dataset}'s {full:,} images")
    if not 0 <= args.val_fraction < 1:
        raise UsageError(f"--val-fraction must be at least 0 and below 1, got {args.val_fraction}")
    choose(args.test, TEST_WHEN, "--test")
    if args.test == "never" and not args.val_fraction:
        raise UsageError("--test never needs --val-fraction: without the test set, only a validation split "
                         "says how the run did")
    if not 0 <= args.seed < 2**32:
        raise UsageError(f"--seed must be a whole number from 0 to 2**32 - 1, got {args.seed}")
    if args.lr is not None and not (math.isfinite(args.lr) and args.lr > 0):
        raise UsageError(f"--lr must be a positive number, got {args.lr}")
    if args.model == "classical":
        if args.shots is not None or args.activation is not None or args.trainable_transform or args.control:
            raise UsageError("--shots, --activation, --trainable-transform and --control are QT options; "
                             "drop them for --model classical")
    elif args.budget is not None:
        raise UsageError("--budget is for --model classical; a QT model's size is set by --blocks")
    if args.control is not None:
        choose(args.control, CONTROLS, "control")
    if args.model == "qt" and args.qubits is not None:
        m = num_params(cnn(args.dataset, args.relu))
        if 2**args.qubits < m:
            raise UsageError(f"{args.qubits} qubits give 2^{args.qubits} = {2**args.qubits:,} basis states, fewer "
                             f"than the CNN's {m:,} weights; use at least {n_qubits_for(m)} qubits")
    try:
        device = get_device(args.device)
    except RuntimeError as e:
        raise UsageError(f"--device {args.device!r} is not a device torch knows ({str(e).splitlines()[0]}); "
                         "use auto, cpu or cuda") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise UsageError(f"--device {args.device}: this machine has no CUDA GPU; use --device cpu (or auto)")
    if device.type not in ("cpu", "cuda"):
        raise UsageError(f"--device {args.device}: only cpu and cuda are supported")
    if args.cuda_graph and device.type != "cuda":
        raise UsageError(f"--cuda-graph needs a CUDA GPU and this run is on {device.type}; drop --cuda-graph")
    args.batch_size = args.batch_size or (1000 if args.dataset == "cifar10" else 128)
    args.lr = args.lr if args.lr is not None else (1e-4 if args.model == "qt" else 1e-3)
    for flag, path in (("--json", args.json), ("--export", args.export)):
        writable(path, flag, args.overwrite)
    if args.checkpoint is not None:
        writable(args.checkpoint, "--checkpoint", overwrite=True)  # its own rules follow
    distinct_outputs(args)
    check_size(args)
    try:
        check_fit_args(args.epochs, args.lr, args.checkpoint, args.resume, args.overwrite)
    except ValueError as e:
        raise UsageError(str(e).replace("resume it, or overwrite it explicitly (CLI: --resume or --overwrite)",
                                        "pass --resume to continue it or --overwrite to start over")) from None
    return device


def format_table(rows):
    """Two-column text table of (name, value) rows."""
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"  {k:<{width}}  {v:>12}" for k, v in rows)


def build_model(args):
    """The QT or classical model the (checked) arguments ask for, and its parameter rows."""
    if args.model == "classical":
        net = cnn(args.dataset, args.relu) if args.budget is None else budget_cnn(args.dataset, args.budget,
                                                                                   args.relu, args.standardize)
        net = standardize_weights(net) if args.standardize and args.budget is None else net
        return net, {"cnn_params": num_params(net), "qt_params": None, "qubits": None}
    options = {k: getattr(args, k) for k in ("activation", "init", "shots") if getattr(args, k) is not None}
    options.update({k: True for k in ("trainable_transform", "standardize") if getattr(args, k)})
    net = qt_model(args.dataset, args.blocks, args.backend, args.ansatz, args.preset, relu=args.relu,
                   seed=args.seed, n_qubits=args.qubits, **options)
    if args.control:  # the same QT model, one thing changed (qt_helpers.controls)
        control = control_model(args.control, args.dataset, args.blocks, args.backend, args.ansatz, args.preset,
                                relu=args.relu, seed=args.seed, n_qubits=args.qubits, **options)
        return control, param_table(control, budget=num_params(net))
    return net, net.param_table()


def print_params(info):
    """Print the parameter table of a model."""
    if info.get("control"):
        rows = param_rows(info)
    elif info["qt_params"] is None:
        rows = [("CNN parameters (all trained)", f"{info['cnn_params']:,}")]
    else:
        rows = [("CNN parameters (generated)", f"{info['cnn_params']:,}"), ("qubits", info["qubits"]),
                ("QNN blocks", info["blocks"]), ("QNN angles", f"{info['qnn_params']:,}"),
                ("mapping-model parameters", f"{info['mapping_params']:,}"),
                ("QT trainable parameters", f"{info['qt_params']:,}"),
                ("QT / CNN", f"{info['ratio']:.2%}")]
    print(format_table(rows), flush=True)


def code_commit():
    """$QT_CODE_COMMIT (a grid run from a snapshot of a commit sets it), else the git commit of the code that runs
    ('+dirty' if tracked files differ), else None."""
    import subprocess

    if os.environ.get("QT_CODE_COMMIT"):
        return os.environ["QT_CODE_COMMIT"]

    def git(*a):
        return subprocess.run(["git", "-C", str(Path(__file__).parent), *a], capture_output=True, text=True,
                              timeout=10).stdout.strip()
    try:
        commit = git("rev-parse", "HEAD")
        return commit + ("+dirty" if git("status", "--porcelain", "--untracked-files=no") else "") if commit else None
    except (OSError, subprocess.SubprocessError):
        return None


def train(args, argv=None):
    """The `train` command; `argv` (its arguments) is recorded in the JSON as the command that reproduces it."""
    device = check_args(args)
    set_seed(args.seed)
    net, info = build_model(args)  # before the data: the model's own checks (a backend installed, ...)
    batch_size, lr = args.batch_size, args.lr
    t0 = time.perf_counter()
    train_iter, test_iter, data = load_loaders(args.dataset, batch_size, args.n_train, args.n_test,
                                               args.data_dir, args.seed, device, val_fraction=args.val_fraction)
    load_seconds = time.perf_counter() - t0
    val = "" if data.y_val is None else f" / {len(data.y_val):,} validation"
    print(f"{args.dataset}: {len(data.y_train):,} train{val} / {len(data.y_test):,} test images from {data.source} "
          f"({load_seconds:.1f} s)")
    label = "classical CNN" if args.model == "classical" else f"QT ({args.backend}, {args.ansatz})"
    label = f"control {args.control} of {label}" if args.control else label
    print(f"{label} on {device}:")
    print_params(info)
    t0 = time.perf_counter()
    identity = {k: v for k, v in sorted(vars(args).items()) if k not in OUTPUT_ARGS}
    if args.test == "epochs":  # the behaviour before --test existed: absent, so older checkpoints still resume
        del identity["test"]
    resumed = checkpoint_epochs(args.checkpoint) if args.resume else 0

    def record(history, test_acc, test_loss, train_seconds, **status):
        """The run's JSON record."""
        return {"dataset": args.dataset, "model": args.model,
                "backend": args.backend if args.model == "qt" else None,
                "ansatz": args.ansatz if args.model == "qt" else None, "preset": args.preset,
                "blocks": args.blocks if args.model == "qt" else None, **info,
                "recipe": {k: getattr(args, k) for k in ("activation", "trainable_transform", "standardize",
                                                         "init", "shots", "relu", "schedule", "budget")},
                "test_accuracy": test_acc, "test_loss": test_loss, "train_seconds": train_seconds,
                "load_seconds": load_seconds, "resumed_after_epoch": resumed, "device": str(device),
                "device_name": device_name(device),
                "epochs": args.epochs, "batch_size": batch_size, "lr": lr, "seed": args.seed,
                "n_train": len(data.y_train), "n_test": len(data.y_test), "data_source": data_pack(data.source),
                "n_val": None if data.y_val is None else len(data.y_val),
                "val_accuracy": history["val_acc"][-1] if history.get("val_acc") else None,
                "history": history, "torch": torch.__version__, "python": platform.python_version(),
                "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                "command": None if argv is None else shlex.join(["python", "-m", "qt_helpers", *argv]),
                "commit": code_commit(), **status}

    try:
        history = fit(net, train_iter, test_iter if args.test == "epochs" else None, args.epochs, lr=lr,
                      schedule=args.schedule, device=device, checkpoint=args.checkpoint, resume=args.resume,
                      progress=not args.no_progress, identity={**identity, "qt_helpers": __version__},
                      overwrite=args.overwrite, val_iter=data.val_iter, cuda_graph=args.cuda_graph)
    except Diverged as e:  # never a result: the record says so, with the epochs before
        if args.json:
            write_json(args.json, record(e.history, None, None, time.perf_counter() - t0, diverged=True,
                                         error=str(e)))
            e.args = (f"{e} The record {args.json} is marked diverged.",)
        raise
    train_seconds = time.perf_counter() - t0
    if args.test != "epochs":  # never read during training: no per-epoch test numbers at all
        history["test_loss"] = history["test_acc"] = [None] * len(history["epoch"])
    test_loss, test_acc = {"epochs": lambda: (history["test_loss"][-1], history["test_acc"][-1]),
                           "end": lambda: evaluate(net, test_iter), "never": lambda: (None, None)}[args.test]()
    if test_acc is None:
        print(f"validation accuracy: {history['val_acc'][-1]:.4f} (the test set was not read); "
              f"training took {train_seconds:.1f} s")
    else:
        print(f"test accuracy: {test_acc:.4f} (loss {test_loss:.4f}) on {len(data.y_test):,} images; "
              f"training took {train_seconds:.1f} s")
    if args.export:
        plain = net.export() if hasattr(net, "export") else net
        atomic_write(args.export, lambda f: torch.save(plain.state_dict(), f))
        print(f"exported the CNN's weights to {args.export}")
    if args.json:
        write_json(args.json, record(history, test_acc, test_loss, train_seconds))
        print(f"wrote {args.json}")
    return history


def main(argv=None):
    """Entry point of `python -m qt_helpers` and the `qt-helpers` script: 0 on success, 2 for a user error
    (printed as one line, `error: ...`)."""
    argv = sys.argv[1:] if argv is None else list(argv)
    args = build_parser().parse_args(argv)
    try:
        if args.command == "experiment":  # the grids are book tooling, apart from this library's CLI
            raise UsageError("the experiment grids moved: python -m qt_helpers.science.experiments "
                             + " ".join(args.rest))
        train(args, [a for a in argv if a != "--debug"])
        return 0
    except USER_ERRORS as e:
        if args.debug:
            raise
        message = str(e).strip().replace("\n", " ")
        print(f"error: {message}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
