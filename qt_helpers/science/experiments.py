"""The science chapter's experiment grids: every run is one `python -m qt_helpers train` command.

    python -m qt_helpers.science.experiments blocks --dataset mnist fashion_mnist --jobs 2
    python -m qt_helpers.science.experiments seeds shots --dataset mnist --dry-run   # print the commands only
    python -m qt_helpers.science.experiments blocks --dataset cifar10 --runs 'cnn*'   # only the classical runs

Each run writes `<out>/<dataset>/<grid>/<run>.json` (the `train --json` record, which holds the command that
reproduces it) and a `.log` beside it. Runs whose JSON exists are skipped, so an interrupted grid resumes; a
command that two grids share runs once.
"""
import argparse
import functools
import json
import os
import shlex
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone
from fnmatch import fnmatch
from pathlib import Path

from ..circuits import n_qubits_for
from ..cli import OUTPUT_ARGS, Parser, apply_recipe, build_parser
from ..data import resolve_name
from ..models import cnn, num_params
from ..published import QT_BLOCKS, qt_params
from ..recipes import RECIPES

SEEDS_RECIPES = ("improved", "lr-cosine")  # the QT recipes of the seeds grid (see qt_helpers.recipes)
LONG_RECIPE = "lr-cosine"  # the long grid's QT recipe: the seeds grid's best, trained twice as long
BLOCKS_RECIPES = ("improved", "lr-cosine")  # the QT recipes of the block sweep
SEEDS = (42, 43, 44)
SHOTS_EXPONENTS = (0, 2, 4, 6)  # S = 2^(n+k): from one shot per basis state on average to 64
HEADLINE_BLOCKS = {"mnist": 16, "fashion_mnist": 16, "cifar10": 95}  # the published largest L
GRIDS = ("blocks", "ablation", "seeds", "shots", "long", "tune", "protocol", "control")
DEFAULT_EPOCHS = {"blocks": 4, "ablation": 4, "seeds": 10, "shots": 4, "long": 20, "tune": 10, "protocol": 10,
                  "control": 10}
# The validation protocol: `tune` tries the same number of settings for QT and for the budget CNN, each scored on a
# class-balanced validation split (10 % of the training set, the same for every run) without reading the test set;
# `protocol` trains each model's best setting with the three seeds and reads the test set once, after training.
VAL_FRACTION = "0.1"
TUNE_LRS = {"qt": ("1e-3", "3e-3", "1e-2"), "cnn-budget": ("3e-4", "1e-3", "3e-3")}
# the budget CNN's second axis, as QT's is its two recipes: weight standardisation or not (QT has it as an option),
# both with the cosine schedule of QT's recipes (a plateau schedule was the axis until the controls issue)
TUNE_CNN_OPTIONS = {"cosine": ["--schedule", "cosine"], "standardize": ["--schedule", "cosine", "--standardize"]}
# CIFAR-10 trains at batch 1000, so its epoch is 50 steps (MNIST's: 469): 20 epochs in every grid, 40 in long
CIFAR10_EPOCHS = {**dict.fromkeys(GRIDS, 20), "long": 40}


def default_epochs(name, dataset):
    """The epochs grid `name` trains for on `dataset` unless told otherwise."""
    return (CIFAR10_EPOCHS if resolve_name(dataset) == "cifar10" else DEFAULT_EPOCHS)[name]


def flags(recipe, dataset):
    """`train` flags of the recipe called `recipe` on `dataset`."""
    return RECIPES[recipe].cli_args(dataset)


def ablation_rows(dataset):
    """(run, flags): the reference, then one change at a time, ending at the improved recipe and past it."""
    improved = flags("improved", dataset)
    return [("reference", flags("reference", dataset)),
            ("lr-3e-3", ["--lr", "3e-3"]),
            ("lr-3e-3-cosine", ["--lr", "3e-3", "--schedule", "cosine"]),
            ("improved", improved),  # + ReLU mapping model
            ("improved-trainable-transform", improved + ["--trainable-transform"]),
            ("improved-standardize", improved + ["--standardize"]),
            ("improved-small-init", improved + ["--init", "small"]),
            ("improved-batch-512", improved + ["--batch-size", "512"])]


def shots(dataset):
    """The shots grid's S values for `dataset`'s QT model of n qubits: 2^n ... 2^(n+6)."""
    n = n_qubits_for(num_params(cnn(dataset)))
    return tuple(2 ** (n + k) for k in SHOTS_EXPONENTS)


def blocks_run(recipe, L):
    """The block sweep's run name of QT with `recipe` at L blocks (the improved recipe's runs came first)."""
    return f"qt-L{L}" if recipe == "improved" else f"qt-{recipe}-L{L}"


def tune_rows(dataset, blocks):
    """[(model, trial, train arguments)] of the tune grid: 6 settings of QT (2 recipes × 3 learning rates) and 6 of
    the CNN of QT's budget (with and without weight standardisation × 3 learning rates)."""
    qt = ["--dataset", dataset, "--blocks", str(blocks)]
    budget = ["--dataset", dataset, *flags("classical", dataset), "--budget", str(qt_params(dataset, blocks))]
    rows = [("qt", f"qt-{r}-lr{lr}", qt + flags(r, dataset) + ["--lr", lr])
            for r in SEEDS_RECIPES for lr in TUNE_LRS["qt"]]
    return rows + [("cnn-budget", f"cnn-budget-{s}-lr{lr}", budget + options + ["--lr", lr])
                   for s, options in TUNE_CNN_OPTIONS.items() for lr in TUNE_LRS["cnn-budget"]]


def chosen(out, dataset, blocks):
    """{model: (trial, validation accuracy, train arguments)}: each model's best trial of the tune grid under
    `out`, by its last epoch's validation accuracy (the test set plays no part). A model is chosen only once all
    its trials have run (CIFAR-10's QT trials wait for a GPU while its CNN's run on the CPU)."""
    best, missing = {}, {}
    for model, trial, argv in tune_rows(dataset, blocks):
        path = Path(out) / dataset / "tune" / f"{trial}.json"
        try:
            acc = json.loads(path.read_text())["val_accuracy"]
        except (OSError, ValueError, KeyError) as e:
            missing.setdefault(model, f"{path} ({type(e).__name__})")
            continue
        if model not in best or acc > best[model][1]:
            best[model] = (trial, acc, argv)
    if len(missing) == len({m for m, _, _ in tune_rows(dataset, blocks)}):
        raise ValueError(f"the protocol grid chooses from the tune grid's runs, and {next(iter(missing.values()))} "
                         "is not one; run the tune grid first")
    return {m: b for m, b in best.items() if m not in missing}


# The control grid (qt_helpers.controls): each control of QT's chosen setting tries 3 learning rates on the validation
# split (the test set unread), the chosen one's ± half a decade (QT's 1e-2, at the top of its tune range, so one
# above; the low-rank CNN around the budget CNN's 3e-3), then trains the best with the three seeds and reads the
# test set once. QT itself is the protocol grid's qt-chosen runs (the same commands: copied, not retrained).
CONTROL_LRS = {"frozen-circuit": ("3e-3", "1e-2", "3e-2"), "classical-generator": ("3e-3", "1e-2", "3e-2"),
               "mapping-only": ("3e-3", "1e-2", "3e-2"), "low-rank-cnn": ("1e-3", "3e-3", "1e-2")}


def control_rows(out, dataset, blocks):
    """[(run, train arguments)] of the control grid: every variant's trials, then the seed runs of each variant whose
    trials have all run (and QT's, the protocol's), chosen by the last epoch's validation accuracy."""
    best = chosen(out, dataset, blocks)
    if "qt" not in best:
        raise ValueError(f"the control grid varies QT's chosen setting, and QT's {dataset} tune trials have not "
                         "all run; run the tune grid first")
    qt = best["qt"][2]
    trials = [(f"{v}-lr{lr}", qt + ["--control", v, "--lr", lr, "--val-fraction", VAL_FRACTION, "--test", "never"])
              for v, lrs in CONTROL_LRS.items() for lr in lrs]
    runs = trials + [(f"qt-seed{s}", qt + ["--seed", str(s), "--val-fraction", VAL_FRACTION, "--test", "end"])
                     for s in SEEDS]
    for v in CONTROL_LRS:
        scores = {}
        for run, argv in trials:
            try:
                record = json.loads((Path(out) / dataset / "control" / f"{run}.json").read_text())
                if run.startswith(v + "-lr") and len(record["history"]["epoch"]) == record["epochs"]:
                    scores[run] = (record["val_accuracy"], argv)
            except (OSError, ValueError, KeyError, TypeError):
                continue
        if len(scores) == len(CONTROL_LRS[v]):
            argv = max(scores.values(), key=lambda t: t[0])[1][:-4]  # without the trial's --val-fraction/--test
            runs += [(f"{v}-seed{s}", argv + ["--seed", str(s), "--val-fraction", VAL_FRACTION, "--test", "end"])
                     for s in SEEDS]
    return runs


def grid(name, dataset, blocks=None, out="results/runs"):
    """[(run, train arguments)] of grid `name` for `dataset` (without epochs, seed or output); `blocks` of the
    ablation, seeds, shots, tune and protocol grids (default: the dataset's largest published L); the protocol
    grid reads its choices from the tune grid under `out`."""
    dataset = resolve_name(dataset)
    blocks = blocks or HEADLINE_BLOCKS[dataset]
    qt = ["--dataset", dataset, "--blocks", str(blocks)]
    classical = ["--dataset", dataset, *flags("classical", dataset)]
    improved = flags("improved", dataset)
    if name == "blocks":
        runs = [("cnn", classical)]
        for L in QT_BLOCKS[dataset]:
            runs += [(blocks_run(r, L), ["--dataset", dataset, "--blocks", str(L), *flags(r, dataset)])
                     for r in BLOCKS_RECIPES]
            runs.append((f"cnn-budget-L{L}", [*classical, "--budget", str(qt_params(dataset, L))]))
        return runs
    if name == "ablation":
        return [(run, qt + row) for run, row in ablation_rows(dataset)]
    if name in ("seeds", "long"):
        budget = [*classical, "--budget", str(qt_params(dataset, blocks))]
        recipes = SEEDS_RECIPES if name == "seeds" else (LONG_RECIPE,)
        runs = []
        for s in SEEDS:
            seed = ["--seed", str(s)]
            runs += [(f"qt-{r}-seed{s}", qt + flags(r, dataset) + seed) for r in recipes]
            if name == "seeds":
                runs.append((f"cnn-seed{s}", classical + seed))
            runs.append((f"cnn-budget-seed{s}", budget + seed))
        return sorted(runs, key=lambda run: not run[0].startswith("qt-"))  # the long QT runs first
    if name == "tune":
        return [(trial, argv + ["--val-fraction", VAL_FRACTION, "--test", "never"])
                for _, trial, argv in tune_rows(dataset, blocks)]
    if name == "protocol":
        best = chosen(out, dataset, blocks)
        prefix = {"qt": "qt-chosen", "cnn-budget": "cnn-budget"}
        return [(f"{prefix[m]}-seed{s}", argv + ["--seed", str(s), "--val-fraction", VAL_FRACTION, "--test", "end"])
                for s in SEEDS for m, (_, _, argv) in best.items()]
    if name == "control":
        return control_rows(out, dataset, blocks)
    if name == "shots":  # seed 42's runs keep the names they had before the grid had seeds
        runs = []
        for seed in SEEDS:
            tag, flag = ("", []) if seed == SEEDS[0] else (f"-seed{seed}", ["--seed", str(seed)])
            runs += [(f"exact{tag}", qt + improved + flag)] + [(f"shots-{s}{tag}", qt + improved + ["--shots", str(s)]
                                                                 + flag) for s in shots(dataset)]
        return runs
    raise ValueError(f"unknown grid {name!r}; choose one of {', '.join(GRIDS)}")


def commands(name, dataset, out="results/runs", epochs=None, data_dir=None, blocks=None, extra=(), runs=None):
    """[(json path, train argv)] of a grid, with epochs, output and `extra` train arguments filled in; only the
    runs whose name matches one of the shell patterns `runs`, if given."""
    dataset = resolve_name(dataset)
    if name not in GRIDS:
        raise ValueError(f"unknown grid {name!r}; choose one of {', '.join(GRIDS)}")
    epochs = epochs or default_epochs(name, dataset)
    folder = Path(out) / dataset / name
    result = []
    for run, flags in grid(name, dataset, blocks, out):
        if runs and not any(fnmatch(run, pattern) for pattern in runs):
            continue
        path = folder / f"{run}.json"
        argv = ["train", *flags, "--epochs", str(epochs), *extra, "--json", str(path), "--no-progress"]
        if data_dir:
            argv += ["--data-dir", str(data_dir)]
        result.append((path, argv))
    return result




@functools.cache
def train_parser():
    """The CLI's parser, built once (`finished` parses every recorded command)."""
    return build_parser()


def run_key(argv):
    """A `train` command's experiment: its parsed arguments (defaults filled in) but the output ones; two
    commands with the same key are the same run, e.g. `--seed 42` and no seed."""
    args = train_parser().parse_args(argv)
    args.dataset = resolve_name(args.dataset)
    apply_recipe(args)
    return tuple(sorted((k, v) for k, v in vars(args).items() if k not in OUTPUT_ARGS))


def _die_with_parent():
    """In a child process: receive SIGTERM when the parent dies (even by kill -9), on Linux."""
    try:
        import ctypes
        import signal

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):  # not Linux: the child may outlive a killed parent
        pass


def run_one(path, argv, threads):
    """Run one `train` command in a subprocess (its output appended to `<run>.log`); returns its exit code."""
    path.parent.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    with open(path.with_suffix(".log"), "a") as log:
        log.write(f"=== {datetime.now(timezone.utc).isoformat(timespec='seconds')}: python -m qt_helpers "
                  f"{shlex.join(argv)}\n")
        log.flush()
        return subprocess.call([sys.executable, "-m", "qt_helpers", *argv], stdout=log, stderr=subprocess.STDOUT,
                               env=env, preexec_fn=_die_with_parent if sys.platform == "linux" else None)


def copy_run(src, dst):
    """Record a run that is identical to a finished one (same command but the output) under a second name."""
    record = json.loads(src.read_text())
    record.setdefault("same_run_as", str(src))  # the run that was made, not a copy of it
    dst.parent.mkdir(parents=True, exist_ok=True)
    dst.write_text(json.dumps(record, indent=2))


def read_record(path):
    """The run record at `path`, or None (with a note naming the file) when it is not a finished run's JSON."""
    try:
        record = json.loads(Path(path).read_text())
        argv = shlex.split(record["command"])[3:]
        if len(record["history"]["epoch"]) != record["epochs"]:
            raise ValueError(f"{len(record['history']['epoch'])} of {record['epochs']} epochs")
        return record, run_key(argv)
    except (OSError, ValueError, KeyError, TypeError, AttributeError, SystemExit) as e:
        print(f"  not a finished run, will be redone: {path} ({type(e).__name__}: {str(e)[:80]})", flush=True)
        return None


def done(path, argv):
    """True when `path` holds the finished record of exactly this command (recipe, data scale, epochs...)."""
    if not Path(path).exists():
        return False
    found = read_record(path)
    if found is not None and found[1] != run_key(argv):
        print(f"  {path} holds another run (other arguments); it will be replaced by this grid's run", flush=True)
        return False
    return found is not None


def finished(out):
    """{run key: JSON path} of the finished runs under `out` (broken files are named and skipped)."""
    runs = {}
    for path in sorted(Path(out).glob("**/*.json")):
        found = read_record(path)
        if found is not None and "same_run_as" not in found[0]:
            runs.setdefault(found[1], path)
    return runs


def run_commands(cmds, out, jobs=1, force=False, threads=None):
    """Run the missing ones of [(json path, argv)], `jobs` at a time; an identical command runs once."""
    todo = {}  # key -> [(path, argv)]: the first is run, the others get a copy of its JSON
    for path, argv in cmds:
        if force or not done(path, argv):
            todo.setdefault(run_key(argv), []).append((path, argv))
    threads = threads or max(1, (os.cpu_count() or 1) // jobs)
    print(f"{len(todo)} runs to do, {jobs} at a time with {threads} thread(s) each", flush=True)
    failed = []

    def work(runs):
        (path, argv), *copies = runs
        same = None if force else finished(out).get(run_key(argv))  # another grid (or process) ran it
        if same is not None:
            rc = 0
            copy_run(same, path)
        else:
            ckpt = path.with_suffix(".pt")  # every epoch's checkpoint: a cut-off grid resumes its runs
            resume = ckpt.exists() and not force
            rc = run_one(path, argv + ["--checkpoint", str(ckpt)] + (["--resume"] if resume else ["--overwrite"]),
                         threads)
            if rc == 0:
                ckpt.unlink(missing_ok=True)
        state = "same as " + str(same) if same else "done" if rc == 0 else f"FAILED (exit {rc}), see the .log"
        print(f"  {state}: {path}", flush=True)
        if rc:
            failed.append(path)
        else:
            for other, _ in copies:
                copy_run(path, other)

    with ThreadPoolExecutor(jobs) as pool:
        list(pool.map(work, todo.values()))
    return failed


def build_grid_parser():
    """The parser of `python -m qt_helpers.science.experiments`."""
    e = Parser(prog="python -m qt_helpers.science.experiments", description=__doc__,
               formatter_class=argparse.RawDescriptionHelpFormatter)
    e.add_argument("--debug", action="store_true", help="show the traceback of an error")
    e.add_argument("grids", nargs="+", metavar="grid", help=f"one or more of {', '.join(GRIDS)}")
    e.add_argument("--dataset", nargs="+", default=["mnist"], help="one or more datasets")
    e.add_argument("--epochs", type=int, default=None,
                   help=", ".join(f"{k}: {v}" for k, v in DEFAULT_EPOCHS.items())
                   + " by default (CIFAR-10: 20, long 40)")
    e.add_argument("--blocks", type=int, default=None,
                   help="QNN blocks of the ablation, seeds, shots and long grids (default: 16, CIFAR-10 95)")
    e.add_argument("--runs", nargs="+", default=None, metavar="PATTERN",
                   help="only the runs whose name matches one of these shell patterns, e.g. 'cnn*' (default: all)")
    e.add_argument("--out", default="results/runs")
    e.add_argument("--jobs", type=int, default=1, help="runs at a time")
    e.add_argument("--threads", type=int, default=None, help="torch threads per run (default: cores / jobs)")
    e.add_argument("--data-dir", default=None)
    e.add_argument("--n-train", type=int, default=None, help="class-balanced training subset (default: all)")
    e.add_argument("--n-test", type=int, default=None, help="class-balanced test subset (default: all)")
    e.add_argument("--dry-run", action="store_true", help="print the commands, run nothing")
    e.add_argument("--force", action="store_true", help="rerun runs whose JSON exists")
    return e


RESULTS = Path(__file__).resolve().parents[2] / "results" / "runs"  # the science results the book reads


def check_args(args):
    """Check the `experiment` arguments before any work (raises ValueError with the message to print)."""
    for flag in ("epochs", "blocks", "jobs", "threads", "n_train", "n_test"):
        value = getattr(args, flag)
        if value is not None and value < 1:
            raise ValueError(f"--{flag.replace('_', '-')} must be a whole number >= 1, got {value}")
    for name in args.grids:
        if name not in GRIDS:
            raise ValueError(f"unknown grid {name!r}; choose one of {', '.join(GRIDS)}")
    for d in args.dataset:
        resolve_name(d)
    out = Path(args.out).resolve()
    if (args.n_train or args.n_test) and (out == RESULTS or RESULTS in out.parents):
        raise ValueError(f"--n-train/--n-test make subset runs, which must not mix with the full-scale results in "
                         f"{args.out}; write them elsewhere, e.g. --out build/subset-runs")


def main(argv=None):
    """Run the grids (all grids x datasets, in that order): 0 on success, 2 for a user error (one line,
    `error: ...`), 1 if a run failed."""
    args = build_grid_parser().parse_args(sys.argv[1:] if argv is None else argv)
    # the protocol grid reads the tune grid's results, so it runs after the other grids named with it; the control
    # grid's seed runs read its trials', so it runs in both phases
    later = ("protocol",) if args.dry_run else ("protocol", "control")
    phases = [[g for g in args.grids if g != "protocol"], [g for g in args.grids if g in later]]
    for i, grids in enumerate(p for p in phases if p):
        try:
            check_args(args)
            extra = [x for k in ("n_train", "n_test") if getattr(args, k)
                     for x in (f"--{k.replace('_', '-')}", str(getattr(args, k)))]
            cmds = [c for name in grids for d in args.dataset
                    for c in commands(name, d, args.out, args.epochs, args.data_dir, args.blocks, extra, args.runs)]
            if not cmds:
                raise ValueError(f"no run of {', '.join(grids)} matches {' '.join(args.runs)}; "
                                 "see the run names with --dry-run")
        except ValueError as e:
            if args.debug:
                raise
            if i and args.dry_run:
                e = ValueError(f"{e}; --dry-run prints the protocol grid's runs once the tune grid has run")
            print(f"error: {str(e).strip()}", file=sys.stderr)
            return 2
        if args.dry_run:
            for _, argv in cmds:
                print("python -m qt_helpers", shlex.join(argv))
            continue
        if run_commands(cmds, args.out, args.jobs, args.force, args.threads):
            return 1  # a failed tune run leaves the protocol nothing to choose from
    return 0


if __name__ == "__main__":
    sys.exit(main())
