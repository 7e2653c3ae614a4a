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
               "command", "recipe", "tensorboard", "extend", "extend_from", "started_epochs",
               "cuda_graph")
# What a --recipe sets; an option given on the command line wins over it, and without a recipe the option's
# default holds (lr: per model, filled in by check_args).
RECIPE_OPTIONS = ("model", "activation", "standardize", "lr", "schedule")


class Default(str):
    """The parser's default of an option a recipe may set, told apart from the same value typed by the user."""
USAGE_NOTES = """\
recipes: --recipe NAME sets the model, mapping-model options, learning rate and schedule of a named recipe
(qt_helpers.recipes); any of those options given on the command line wins over the recipe's. A recipe's model is
part of it: `--recipe classical --model qt` is refused. The JSON records the settings that ran (`settings`).

resuming: with --checkpoint FILE every finished epoch is saved; after an interruption (Ctrl-C) the same command
with --resume continues it. --resume --extend with more --epochs than the run had continues a finished run:
the plateau schedule carries on; the cosine schedule goes on from the learning rate a run of the new length has at
that epoch, down to 0 at the new end."""


class DefaultsFormatter(argparse.RawDescriptionHelpFormatter):
    """Help that ends every option's text with its default (options whose default depends on others say so)."""

    def _get_help_string(self, action):
        text = action.help or ""
        if "default" in text or not action.option_strings or action.default is None \
                or action.default is argparse.SUPPRESS or isinstance(action, argparse._HelpAction):
            return text
        return text + (" (default: off)" if action.default is False else " (default: %(default)s)")


def choices(values):
    """A metavar listing the valid values, as argparse shows `choices`."""
    return "{" + ",".join(values) + "}"


def add_train_arguments(t):
    """The options of `train` (shared by `python -m qt_helpers train` and the `qt-train` script)."""
    t.add_argument("--recipe", default=None, metavar=choices(RECIPES),
                   help="a named recipe: its model, options, lr and schedule are the defaults of those options "
                        "(default: none)")
    t.add_argument("--dataset", default="mnist", metavar=choices(DATASETS), help="the dataset")
    t.add_argument("--model", default=Default("qt"), metavar=choices(MODELS),
                   help="QT, or the classical CNN trained directly (default: the recipe's, else qt)")
    t.add_argument("--backend", default="native", metavar=choices(BACKENDS), help="the QNN's simulator")
    t.add_argument("--ansatz", default="u3cu3", metavar=choices(ANSATZE), help="the QNN's circuit")
    t.add_argument("--preset", default="reference", metavar=choices(PRESETS),
                   help="QT's transform and mapping-model sizes")
    t.add_argument("--blocks", type=int, default=16, help="QNN blocks L")
    t.add_argument("--qubits", type=int, default=None, help="qubits (default: ceil(log2 M) for the CNN's M weights)")
    t.add_argument("--activation", default=None, metavar=choices(ACTIVATIONS),
                   help="the mapping model's activation (default: the recipe's, else none: an affine map)")
    t.add_argument("--trainable-transform", action="store_true", help="train gamma, beta, alpha too")
    t.add_argument("--standardize", action=argparse.BooleanOptionalAction, default=Default(""),
                   help="weight standardisation of the generated weights, one trained scale per tensor "
                        "(default: the recipe's, else off)")
    t.add_argument("--init", default=None, metavar=choices(INITS),
                   help="QNN angle initialisation (default: the ansatz's original)")
    t.add_argument("--shots", type=int, default=None,
                   help="estimate the QNN's probabilities from this many measurement shots (default: exact)")
    t.add_argument("--relu", action="store_true", help="CNN with ReLUs (the reference has none)")
    t.add_argument("--control", default=None, metavar=choices(CONTROLS),
                   help="a control of the QT model at its budget, chapter 7 (default: none, QT itself)")
    t.add_argument("--budget", type=int, default=None,
                   help="classical model: the reference CNN made narrower to at most this many parameters "
                        "(default: the full CNN)")
    t.add_argument("--epochs", type=int, default=1, help="training epochs (more than a checkpoint's, with "
                   "--resume: continue a finished run)")
    t.add_argument("--batch-size", type=int, default=None, help="examples per step (default: 128, CIFAR-10 1000)")
    t.add_argument("--lr", type=float, default=None,
                   help="Adam's learning rate (default: the recipe's, else QT 1e-4, classical 1e-3)")
    t.add_argument("--schedule", default=Default("plateau"), metavar=choices(SCHEDULES),
                   help="learning-rate schedule (default: the recipe's, else plateau, as the reference)")
    t.add_argument("--n-train", type=int, default=None, help="class-balanced training subset (default: all)")
    t.add_argument("--n-test", type=int, default=None, help="class-balanced test subset (default: all)")
    t.add_argument("--val-fraction", type=float, default=0.0,
                   help="carve a class-balanced validation split of this fraction from the training set (the same "
                        "for every seed) and record its accuracy every epoch; 0: no split")
    t.add_argument("--test", default="epochs", metavar=choices(TEST_WHEN),
                   help="when the test set is read: after every epoch (for curves), once at the end, or never "
                        "(choices made on --val-fraction alone)")
    t.add_argument("--data-dir", default=None, help="folder with <dataset>.npz packs (default: $QT_DATA_DIR, "
                   "else torchvision's download into ~/.cache/qt_helpers)")
    t.add_argument("--device", default="auto", help="auto (CUDA if there is one), cpu, cuda, cuda:1, ...")
    t.add_argument("--cuda-graph", action="store_true",
                   help="on a CUDA GPU: replay each training step from one captured CUDA graph (chapter 6)")
    t.add_argument("--seed", type=int, default=42, help="seed of the model's initialisation and the data's order")
    t.add_argument("--checkpoint", default=None, help="checkpoint file written after every epoch (default: none)")
    t.add_argument("--resume", action="store_true", help="continue from --checkpoint (it must exist)")
    t.add_argument("--extend", action="store_true",
                   help="with --resume and more --epochs: continue a finished run (a cosine decay goes on as a "
                        "run of the new length would)")
    t.add_argument("--overwrite", action="store_true",
                   help="replace an existing --checkpoint, --json or --export file (never done without it)")
    t.add_argument("--json", default=None, help="write the results to this JSON file (default: none)")
    t.add_argument("--export", default=None, help="save the trained CNN's state_dict (plain torch) here "
                   "(default: none)")
    t.add_argument("--tensorboard", default=None, metavar="DIR",
                   help="also write TensorBoard curves into this folder (needs `pip install tensorboard`; the "
                        "JSON stays the record) (default: none)")
    t.add_argument("--no-progress", action="store_true", help="no progress bar")
    t.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help="show the traceback of an error")
    return t


def build_parser(prog="python -m qt_helpers"):
    """The argument parser of `python -m qt_helpers`."""
    p = Parser(prog=prog, description=__doc__, formatter_class=DefaultsFormatter)
    p.add_argument("--debug", action="store_true", help="show the traceback of an error")
    sub = p.add_subparsers(dest="command", required=True, parser_class=Parser)
    add_train_arguments(sub.add_parser("train", help="train a QT or classical model on a dataset",
                                       description="Train a QT or classical model on a dataset.",
                                       epilog=USAGE_NOTES, formatter_class=DefaultsFormatter))
    sub.add_parser("experiment", add_help=False, help="moved: python -m qtbook.experiments"
                   ).add_argument("rest", nargs=argparse.REMAINDER)
    return p


def build_train_parser(prog="qt-train"):
    """The argument parser of the `qt-train` script: `train`'s options alone."""
    p = Parser(prog=prog, description="Train a QT or classical model on a dataset (the same as "
               "`python -m qt_helpers train`).", epilog=USAGE_NOTES, formatter_class=DefaultsFormatter)
    add_train_arguments(p)
    p.set_defaults(command="train")
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
    """Resolve the options a --recipe sets: an option given on the command line wins, then the recipe's value,
    then the plain default. A recipe's model is part of it: asking for another model is refused."""
    r = None if args.recipe is None else RECIPES[choose(args.recipe, tuple(RECIPES), "recipe")]
    if r is not None and not isinstance(args.model, Default) and args.model != r.model:
        raise UsageError(f"--recipe {r.name} trains the {'classical CNN' if r.model == 'classical' else 'QT model'}"
                         f", not --model {args.model}; drop one of them (QT recipes: "
                         f"{', '.join(n for n, x in RECIPES.items() if x.model == 'qt')})")
    recipe = {} if r is None else {"model": r.model, "lr": r.lr, "schedule": r.schedule,
                                   **r.options(args.dataset)}  # QT's options: activation, standardize
    for key in RECIPE_OPTIONS:
        value = getattr(args, key)
        if value is None or isinstance(value, Default):  # not given: the recipe's, else the option's default
            value = recipe.get(key, value)
        setattr(args, key, bool(value) if key == "standardize" else str(value) if isinstance(value, Default)
                else value)


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
    args.extend_from = resume_plan(args) if args.resume else None
    if args.tensorboard is not None:
        try:
            from torch.utils.tensorboard import SummaryWriter  # noqa: F401
        except ImportError:
            raise UsageError("--tensorboard needs the tensorboard package: pip install tensorboard") from None
        if Path(args.tensorboard).is_file():
            raise UsageError(f"--tensorboard {args.tensorboard} is a file; give a folder")
    return device


def resume_plan(args):
    """For --resume: None to continue the checkpoint's run as it was started, or the number of epochs of the
    finished run that --epochs extends. Other --epochs are refused, naming what the checkpoint holds."""
    try:
        state = torch.load(args.checkpoint, map_location="cpu", weights_only=True)
        target, done = state["identity"]["num_epochs"], len(state["history"]["epoch"])
    except Exception:
        return None  # unreadable, or without an identity: `fit` says why
    args.started_epochs = state["identity"].get("epochs", target)  # an extended run: fewer than `target`
    if args.epochs == target:
        return None
    if args.epochs < target:
        raise UsageError(f"checkpoint {args.checkpoint} is a {target}-epoch run ({done} done); --epochs "
                         f"{args.epochs} cannot shorten it: pass --epochs {target} to resume it, or more to extend it")
    if done < target:
        raise UsageError(f"checkpoint {args.checkpoint} holds {done} of its {target} epochs: finish it first "
                         f"(--epochs {target} --resume), then extend it with more --epochs and --extend")
    if not args.extend:  # never implicit: a grid's --resume must not turn another run into its own
        raise UsageError(f"checkpoint {args.checkpoint} is a finished {target}-epoch run: add --extend to continue "
                         f"it to {args.epochs} epochs, or delete this one to start over")
    return target


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


class Board:
    """--tensorboard: the training loss of every step while training, and every per-epoch curve of the history
    (losses, accuracies, learning rate) when it ends; the JSON stays the record."""

    def __init__(self, folder, settings, steps_per_epoch):
        from torch.utils.tensorboard import SummaryWriter

        self.writer, self.steps = SummaryWriter(folder), steps_per_epoch
        self.writer.add_text("settings", "\n".join(f"    {k}: {v}" for k, v in settings.items()))

    def step(self, epoch, step, loss):
        self.writer.add_scalar("step/train_loss", loss, epoch * self.steps + step + 1)

    def close(self, history):
        for key, values in history.items():
            for epoch, value in zip(history["epoch"], values):
                if key != "epoch" and value is not None and math.isfinite(value):
                    self.writer.add_scalar(f"epoch/{key}", value, epoch)
        self.writer.close()


def train(args, argv=None, prog=("python", "-m", "qt_helpers")):
    """The `train` command; `prog` + `argv` (its arguments) is recorded in the JSON as the command that
    reproduces it."""
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
    settings = {k: v for k, v in sorted(vars(args).items()) if k not in OUTPUT_ARGS}  # what runs, resolved
    identity = dict(settings)
    if args.test == "epochs":  # the behaviour before --test existed: absent, so older checkpoints still resume
        del identity["test"]
    if args.resume and getattr(args, "started_epochs", None):  # an extended run keeps the epochs it started with
        identity["epochs"] = args.started_epochs
    if args.extend_from:
        print(f"extending {args.checkpoint} from {args.extend_from} to {args.epochs} epochs"
              + (f" (the cosine decay goes on from the lr a {args.epochs}-epoch run has there)"
                 if args.schedule == "cosine" else ""))
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
                "recipe_name": args.recipe, "settings": settings, "extended_from_epochs": args.extend_from,
                "command": None if argv is None else shlex.join([*prog, *argv]),
                "commit": code_commit(), **status}

    board = None if args.tensorboard is None else Board(args.tensorboard, settings, len(train_iter))
    try:
        history = fit(net, train_iter, test_iter if args.test == "epochs" else None, args.epochs, lr=lr,
                      schedule=args.schedule, device=device, checkpoint=args.checkpoint, resume=args.resume,
                      progress=not args.no_progress, identity={**identity, "qt_helpers": __version__},
                      overwrite=args.overwrite, val_iter=data.val_iter, extend=bool(args.extend_from),
                      cuda_graph=args.cuda_graph, **({} if board is None else {"on_step": board.step}))
    except Diverged as e:  # never a result: the record says so, with the epochs before
        if args.json:
            write_json(args.json, record(e.history, None, None, time.perf_counter() - t0, diverged=True,
                                         error=str(e)))
            e.args = (f"{e} The record {args.json} is marked diverged.",)
        raise
    train_seconds = time.perf_counter() - t0
    if board:
        board.close(history)
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


def interrupted(args, prog, argv, started):
    """The one line a Ctrl-C ends with: what was saved and the command that continues the run."""
    checkpoint = getattr(args, "checkpoint", None)
    if args.command != "train" or checkpoint is None:
        return ("interrupted: nothing was saved; add --checkpoint FILE to a run to make it resumable"
                if args.command == "train" else "interrupted")
    path = Path(checkpoint)
    if not path.is_file() or (path.stat().st_mtime < started and not args.resume):
        return f"interrupted before the first epoch ended: nothing was saved in {checkpoint}; start the run again"
    again = [a for a in argv if a not in ("--resume", "--overwrite")] + ["--resume"]
    if args.json and Path(args.json).exists() or args.export and Path(args.export).exists():
        again.append("--overwrite")
    return (f"interrupted: {checkpoint_epochs(checkpoint)} of {args.epochs} epochs are saved in {checkpoint}; "
            f"continue with: {shlex.join([*prog, *again])}")


def main(argv=None, prog=("python", "-m", "qt_helpers"), parser=None):
    """Entry point of `python -m qt_helpers` and the `qt-helpers` script: 0 on success, 2 for a user error
    (printed as one line, `error: ...`), 130 after Ctrl-C (one line: how to continue)."""
    argv = sys.argv[1:] if argv is None else list(argv)
    args = (parser or build_parser(" ".join(prog))).parse_args(argv)
    debug = getattr(args, "debug", False)
    argv = [a for a in argv if a != "--debug"]
    started = time.time()
    try:
        if args.command == "experiment":  # the grids are book tooling, apart from this library's CLI
            raise UsageError("the experiment grids moved: python -m qtbook.experiments "
                             + " ".join(args.rest))
        train(args, argv, prog)
        return 0
    except KeyboardInterrupt:
        if debug:
            raise
        print(("\r" if sys.stderr.isatty() else "") + interrupted(args, prog, argv, started), file=sys.stderr)
        return 130
    except USER_ERRORS as e:
        if debug:
            raise
        message = str(e).strip().replace("\n", " ")
        print(f"error: {message}", file=sys.stderr)
        return 2


def helpers_main(argv=None):
    """Entry point of the `qt-helpers` script: `python -m qt_helpers`, under its own name."""
    return main(argv, prog=("qt-helpers",))


def train_main(argv=None):
    """Entry point of the `qt-train` script: `python -m qt_helpers train`, under its own name."""
    return main(argv, prog=("qt-train",), parser=build_train_parser("qt-train"))


if __name__ == "__main__":
    sys.exit(main())
