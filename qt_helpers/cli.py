"""Command line: `python -m qt_helpers train ...` trains a QT or classical model and reports it.

Every argument is checked before any data is loaded or any training starts; a mistake ends in one line,
`error: ...`, and exit code 2 (`--debug` shows the traceback instead).
"""
from __future__ import annotations

import argparse
import functools
import shlex
import sys
import time
from collections.abc import Iterable
from dataclasses import fields
from pathlib import Path

from .circuits import ANSATZE, INITS
from .controls import CONTROLS
from .data import DATASETS, DataNotFoundError
from .qnn import BACKENDS
from .qt import ACTIVATIONS, PRESETS
from .recipes import RECIPES
from .run import Outputs, run
from .spec import MODELS, TEST_WHEN, RunSpec
from .train import SCHEDULES, checkpoint_epochs

USER_ERRORS = (ValueError, DataNotFoundError, FloatingPointError, ImportError, OSError, MemoryError)


class UsageError(ValueError):
    """A command-line mistake; its message is the one line the CLI prints."""


class Parser(argparse.ArgumentParser):
    """argparse, but a mistake is one line `error: ...` and exit code 2 (no usage block)."""

    def error(self, message):
        self.exit(2, f"error: {message} (see {self.prog} --help)\n")


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
    t.add_argument("--model", default=None, metavar=choices(MODELS),
                   help="QT, or the classical CNN trained directly (default: the recipe's, else qt)")
    t.add_argument("--backend", default="native", metavar=choices(BACKENDS), help="the QNN's simulator")
    t.add_argument("--ansatz", default="u3cu3", metavar=choices(ANSATZE), help="the QNN's circuit")
    t.add_argument("--preset", default="reference", metavar=choices(PRESETS),
                   help="QT's transform and mapping-model sizes")
    t.add_argument("--blocks", type=int, default=16, help="QNN blocks L")
    t.add_argument("--qubits", type=int, default=None, help="qubits (default: ceil(log2 M) for the CNN's M weights)")
    t.add_argument("--activation", default=None, metavar=choices(ACTIVATIONS),
                   help="the mapping model's activation (default: the recipe's, else none: an affine map)")
    t.add_argument("--trainable-transform", action=argparse.BooleanOptionalAction, default=False,
                   help="train gamma, beta, alpha too")
    t.add_argument("--standardize", action=argparse.BooleanOptionalAction, default=None,
                   help="weight standardisation of the generated weights, one trained scale per tensor "
                        "(default: the recipe's, else off)")
    t.add_argument("--init", default=None, metavar=choices(INITS),
                   help="QNN angle initialisation (default: the ansatz's original)")
    t.add_argument("--shots", type=int, default=None,
                   help="estimate the QNN's probabilities from this many measurement shots (default: exact)")
    t.add_argument("--relu", action=argparse.BooleanOptionalAction, default=False,
                   help="CNN with ReLUs (the reference has none)")
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
    t.add_argument("--schedule", default=None, metavar=choices(SCHEDULES),
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


OUTPUTS = {f.name for f in fields(Outputs)} - {"progress"} | {"no_progress"}  # where a run's files go, not what it is


@functools.cache
def train_parser() -> argparse.ArgumentParser:
    """`train`'s parser, built once (the grids parse every recorded command with it)."""
    return build_train_parser()


def spec_from_args(args: argparse.Namespace) -> RunSpec:
    """The `RunSpec` of parsed `train` arguments: the options given, on top of --recipe's (one to one: every
    option is a spec field or an `Outputs` field)."""
    given = {f.name: getattr(args, f.name) for f in fields(RunSpec) if f.name != "recipe"}
    for name in ("model", "standardize", "schedule", "activation", "lr"):  # left to the recipe when not given
        if given[name] is None:
            del given[name]
    return RunSpec.create(args.recipe, **given)


def spec_from_argv(argv: Iterable[str]) -> RunSpec:
    """The resolved spec of `train` arguments, with or without the leading 'train' (output options ignored)."""
    argv = list(argv)
    return spec_from_args(train_parser().parse_args(argv[1:] if argv[:1] == ["train"] else argv)).resolved()


def outputs_from_args(args: argparse.Namespace) -> Outputs:
    """The `Outputs` of parsed `train` arguments."""
    return Outputs(json=args.json, checkpoint=args.checkpoint, resume=args.resume, extend=args.extend,
                   export=args.export, overwrite=args.overwrite, tensorboard=args.tensorboard,
                   progress=not args.no_progress, data_dir=args.data_dir, cuda_graph=args.cuda_graph)


def train(args, argv=None, prog=("python", "-m", "qt_helpers")):
    """The `train` command: `run` of the arguments' spec and outputs; `prog` + `argv` (its arguments) is recorded
    as the command that reproduces it."""
    return run(spec_from_args(args), outputs_from_args(args), None if argv is None else [*prog, *argv])


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
    if (args.json and Path(args.json).exists()) or (args.export and Path(args.export).exists()):
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
