"""The science chapter's experiment grids: every grid is a list of typed run specs (`qt_helpers.RunSpec`), one
per named run, deduplicated by the spec's key; each runs as one `python -m qt_helpers train` command.

    python -m qtbook.experiments blocks --dataset mnist fashion_mnist --jobs 2
    python -m qtbook.experiments seeds shots --dataset mnist --dry-run   # print the commands only
    python -m qtbook.experiments blocks --dataset cifar10 --runs 'cnn*'   # only the classical runs

Each run writes `<out>/<dataset>/<grid>/<run>.json` (the `train --json` record, which holds the command that
reproduces it) and a `.log` beside it. Runs whose JSON exists are skipped, so an interrupted grid resumes; a
command that two grids share runs once.

The runs go through one executor (qtbook.executor): by default a local process pool (`--jobs` processes, a
fresh one per run); on a SLURM cluster, one submitit job per run, from a login node (submitit's job files and
logs in `<out>/.submitit`, or --executor-folder):

    python -m qtbook.experiments seeds --dataset mnist --executor slurm --slurm-partition gpu --slurm-time 120 --jobs 8

`--jobs 8` keeps 8 jobs queued or running at a time, each with `--threads` CPUs (default 2) and the run's
torch threads; `--executor submitit-local` runs the same jobs on this machine through submitit (what CI tests).
Every run saves each finished epoch in `<run>.pt` (`--checkpoint`): a job that SLURM preempts or times out is
requeued by submitit and resumes there; and if the grid itself stops (Ctrl-C, a closed session, a job that
failed), the same grid command run again skips the finished runs and continues the others from their
checkpoints (`--resume`).
"""
import argparse
import json
import math
import os
import shlex
import signal
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from fnmatch import fnmatch
from pathlib import Path

import filelock

from qt_helpers.circuits import n_qubits_for
from qt_helpers.cli import Parser, outputs_from_args, spec_from_argv, train_parser
from qt_helpers.data import INFO, resolve_name
from qt_helpers.limits import check_memory, run_bytes
from qt_helpers.models import cnn, num_params
from qt_helpers.recipes import RECIPES
from qt_helpers.records import record_problems, write_json
from qt_helpers.spec import RunSpec

from .executor import KINDS, check_executor, make_executor, train_job
from .published import QT_BLOCKS, qt_params

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
VAL_FRACTION = 0.1
TRIAL = {"val_fraction": VAL_FRACTION, "test": "never"}  # a tune trial: scored on the validation split alone
TESTED = {"val_fraction": VAL_FRACTION, "test": "end"}  # a chosen setting's seed run: the test set read once
TUNE_LRS = {"qt": ("1e-3", "3e-3", "1e-2"), "cnn-budget": ("3e-4", "1e-3", "3e-3")}
# the budget CNN's second axis, as QT's is its two recipes: weight standardisation or not (QT has it as an option),
# both with the cosine schedule of QT's recipes (a plateau schedule was the axis until the controls issue)
TUNE_CNN_OPTIONS = {"cosine": {"schedule": "cosine"}, "standardize": {"schedule": "cosine", "standardize": True}}
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
            ("improved-trainable-transform", [*improved, "--trainable-transform"]),
            ("improved-standardize", [*improved, "--standardize"]),
            ("improved-small-init", [*improved, "--init", "small"]),
            ("improved-batch-512", [*improved, "--batch-size", "512"])]


def shots(dataset):
    """The shots grid's S values for `dataset`'s QT model of n qubits: 2^n ... 2^(n+6)."""
    n = n_qubits_for(num_params(cnn(dataset)))
    return tuple(2 ** (n + k) for k in SHOTS_EXPONENTS)


def blocks_run(recipe, L):
    """The block sweep's run name of QT with `recipe` at L blocks (the improved recipe's runs came first)."""
    return f"qt-L{L}" if recipe == "improved" else f"qt-{recipe}-L{L}"


def tune_rows(dataset, blocks):
    """[(model, trial, spec)] of the tune grid: 6 settings of QT (2 recipes × 3 learning rates) and 6 of the CNN of
    QT's budget (with and without weight standardisation × 3 learning rates)."""
    rows = [("qt", f"qt-{r}-lr{lr}", RunSpec.create(r, dataset=dataset, blocks=blocks, lr=float(lr)))
            for r in SEEDS_RECIPES for lr in TUNE_LRS["qt"]]
    return rows + [("cnn-budget", f"cnn-budget-{name}-lr{lr}",
                    RunSpec.create("classical", dataset=dataset, budget=qt_params(dataset, blocks), lr=float(lr),
                                   **options))
                   for name, options in TUNE_CNN_OPTIONS.items() for lr in TUNE_LRS["cnn-budget"]]


def chosen(out, dataset, blocks, epochs=None, extra=()):
    """{model: (trial, validation accuracy, spec)}: each model's best trial of the tune grid under
    `out`, by its last epoch's validation accuracy (the test set plays no part). A model is chosen only once all
    its trials have run (CIFAR-10's QT trials wait for a GPU while its CNN's run on the CPU). Each trial's record
    must be that trial at this scale (`epochs`, `extra` sizes): a record that is not (another dataset, recipe,
    scale, unfinished, a non-finite accuracy) is refused by name; a diverged trial is never chosen."""
    expected = {path.stem: run_key(argv) for path, argv in commands("tune", dataset, out, epochs, blocks=blocks,
                                                                       extra=extra)}
    best, missing, ran = {}, {}, set()
    for model, trial, spec in tune_rows(dataset, blocks):
        path = Path(out) / dataset / "tune" / f"{trial}.json"
        if not path.exists():
            missing.setdefault(model, f"{path} (not run yet)")
            continue
        record, key, problems = inspect(path)
        if not problems and key != expected[trial]:
            problems = [f"made by another command: {key_diff(key, expected[trial])}"]
        elif record is not None and record.get("diverged"):
            ran.add(model)  # a trial that ran and diverged: never chosen
            continue
        if problems:
            msg = (f"the protocol grid chooses from the tune grid's runs, and {path} does not fit: "
                   f"{'; '.join(problems)}; rerun the tune grid at this scale (same --epochs, --n-train, "
                   "--n-test), or move that file away")
            raise ValueError(msg)
        ran.add(model)
        if model not in best or record["val_accuracy"] > best[model][1]:
            best[model] = (trial, record["val_accuracy"], spec)
    if not best:
        raise ValueError(f"the protocol grid chooses from the tune grid's runs, and {next(iter(missing.values()))} "
                         "is not one; run the tune grid first" if missing else
                         "every tune trial diverged: nothing to choose")
    return {m: b for m, b in best.items() if m not in missing}


# The control grid (qt_helpers.controls): each control of QT's chosen setting tries 3 learning rates on the validation
# split (the test set unread): QT's chosen one and half a decade either side (the low-rank CNN: around the budget
# CNN's), then trains the best with the three seeds and reads the test set once. A control whose best trial is the
# largest (smallest) it tried gets one more trial half a decade above (below), on `CONTROL_LADDER`, until its best
# is inside what it tried: the controls are tuned at least as well as QT, whose own choice may sit at its range's
# edge. QT itself is the protocol grid's qt-chosen runs (the same commands: copied, not retrained).
CONTROL_CENTRE = {"frozen-circuit": "qt", "classical-generator": "qt", "mapping-only": "qt",
                  "low-rank-cnn": "cnn-budget"}
CONTROL_LADDER = ("1e-5", "3e-5", "1e-4", "3e-4", "1e-3", "3e-3", "1e-2", "3e-2", "1e-1", "3e-1")
CONTROL_SPAN = 1  # ladder steps either side of the centre


def control_lrs(variant, best):
    """The learning rates a control tries first: its centre model's chosen one (`best`, from `chosen`) and
    `CONTROL_SPAN` steps of `CONTROL_LADDER` either side; () while that model has not been chosen."""
    if CONTROL_CENTRE[variant] not in best:
        return ()
    lr = best[CONTROL_CENTRE[variant]][2].lr
    i = min(range(len(CONTROL_LADDER)), key=lambda j: abs(math.log(float(CONTROL_LADDER[j]) / lr)))
    return CONTROL_LADDER[max(i - CONTROL_SPAN, 0):i + CONTROL_SPAN + 1]


def val_score(path):
    """The last epoch's validation accuracy of the finished trial at `path`; -inf if it diverged; None while it
    has not run (or its record does not fit)."""
    try:
        record = json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None
    if record.get("diverged"):
        return float("-inf")
    return None if record_problems(record) else record["val_accuracy"]


def control_trials(out, dataset, variant, best):
    """([(run, spec)] of a control's trials so far, the chosen trial's spec or None): its `control_lrs`, then one
    step further along `CONTROL_LADDER` while its best finished trial is at the edge of the (two or more)
    tried (a diverged trial counts as the worst: when all diverge, the steps go down)."""
    lrs, qt = list(control_lrs(variant, best)), best["qt"][2]
    while lrs:
        trials = [(f"{variant}-lr{lr}", replace(qt, control=variant, lr=float(lr), **TRIAL)) for lr in lrs]
        scores = [val_score(Path(out) / dataset / "control" / f"{run}.json") for run, _ in trials]
        if None in scores:
            return trials, None
        top = scores.index(max(scores))
        edge = {0: -1, len(lrs) - 1: 1}.get(top, 0) if len(lrs) > 1 else 0
        step = CONTROL_LADDER.index(lrs[top]) + edge
        if not edge or not 0 <= step < len(CONTROL_LADDER):
            return trials, trials[top][1] if scores[top] > float("-inf") else None  # all diverged: no choice
        lrs.insert(0 if edge < 0 else len(lrs), CONTROL_LADDER[step])
    return [], None


def control_rows(out, dataset, blocks, epochs=None, extra=()):
    """[(run, spec)] of the control grid: every variant's trials (`control_trials`), then the seed runs of each
    variant whose trials have all run (and QT's, the protocol's), chosen by the last epoch's validation accuracy."""
    best = chosen(out, dataset, blocks, epochs, extra)
    if "qt" not in best:
        msg = (f"the control grid varies QT's chosen setting, and QT's {dataset} tune trials have not "
               "all run; run the tune grid first")
        raise ValueError(msg)
    qt = best["qt"][2]
    trials, seeds = [], [(f"qt-seed{s}", replace(qt, seed=s, **TESTED)) for s in SEEDS]
    for variant in CONTROL_CENTRE:
        tried, spec = control_trials(out, dataset, variant, best)
        trials += tried
        if spec is not None:
            seeds += [(f"{variant}-seed{s}", replace(spec, seed=s, **TESTED)) for s in SEEDS]
    return trials + seeds


def grid(name, dataset, blocks=None, out="results/runs", epochs=None, extra=()):
    """[(run, spec)] of grid `name` for `dataset` (specs without epochs or data sizes); `blocks` of the ablation,
    seeds, shots, tune and protocol grids (default: the dataset's largest published L); the protocol and control
    grids read their choices from the tune grid under `out`."""
    dataset = resolve_name(dataset)
    blocks = blocks or HEADLINE_BLOCKS[dataset]

    def recipe(name, **settings):
        return RunSpec.create(name, dataset=dataset, **settings)

    def budget(L):
        return recipe("classical", budget=qt_params(dataset, L))

    if name == "blocks":
        runs = [("cnn", recipe("classical"))]
        for L in QT_BLOCKS[dataset]:
            runs += [(blocks_run(r, L), recipe(r, blocks=L)) for r in BLOCKS_RECIPES]
            runs.append((f"cnn-budget-L{L}", budget(L)))
        return runs
    if name == "ablation":  # its rows are shown as flags in the book: the spec of those flags
        return [(run, spec_from_argv(["--dataset", dataset, "--blocks", str(blocks), *row]))
                for run, row in ablation_rows(dataset)]
    if name in ("seeds", "long"):
        runs = []
        for s in SEEDS:
            runs += [(f"qt-{r}-seed{s}", recipe(r, blocks=blocks, seed=s))
                     for r in (SEEDS_RECIPES if name == "seeds" else (LONG_RECIPE,))]
            if name == "seeds":
                runs.append((f"cnn-seed{s}", recipe("classical", seed=s)))
            runs.append((f"cnn-budget-seed{s}", replace(budget(blocks), seed=s)))
        return sorted(runs, key=lambda run: not run[0].startswith("qt-"))  # the long QT runs first
    if name == "tune":
        return [(trial, replace(spec, **TRIAL)) for _, trial, spec in tune_rows(dataset, blocks)]
    if name == "protocol":
        prefix = {"qt": "qt-chosen", "cnn-budget": "cnn-budget"}
        return [(f"{prefix[m]}-seed{s}", replace(spec, seed=s, **TESTED))
                for s in SEEDS for m, (_, _, spec) in chosen(out, dataset, blocks, epochs, extra).items()]
    if name == "control":
        return control_rows(out, dataset, blocks, epochs, extra)
    if name == "shots":  # seed 42's runs keep the names they had before the grid had seeds
        runs = []
        for seed in SEEDS:
            tag = "" if seed == SEEDS[0] else f"-seed{seed}"
            exact = recipe("improved", blocks=blocks, seed=seed)
            runs += [(f"exact{tag}", exact)] + [(f"shots-{s}{tag}", replace(exact, shots=s)) for s in shots(dataset)]
        return runs
    msg = f"unknown grid {name!r}; choose one of {', '.join(GRIDS)}"
    raise ValueError(msg)


def specs(name, dataset, out="results/runs", epochs=None, blocks=None, extra=(), runs=None):
    """[(json path, spec)] of a grid, with epochs and `extra` train flags (data sizes) applied; only the runs whose name
    matches one of the shell patterns `runs`, if given. Runs with one spec (the same key), in one grid or two, are
    trained once: `run_commands` copies the record to the other names."""
    dataset = resolve_name(dataset)
    if name not in GRIDS:
        msg = f"unknown grid {name!r}; choose one of {', '.join(GRIDS)}"
        raise ValueError(msg)
    epochs = epochs or default_epochs(name, dataset)
    folder = Path(out) / dataset / name
    return [(folder / f"{run}.json", spec_from_argv([*spec.argv(), "--epochs", str(epochs), *extra]))
            for run, spec in grid(name, dataset, blocks, out, epochs, extra)
            if not runs or any(fnmatch(run, pattern) for pattern in runs)]


def commands(name, dataset, out="results/runs", epochs=None, data_dir=None, blocks=None, extra=(), runs=None):
    """[(json path, train argv)] of a grid's specs (`specs`), each with its record's path as --json (and the
    output flags among `extra`, e.g. --data-dir)."""
    given = outputs_from_args(train_parser().parse_args(list(extra)))
    outputs = replace(given, progress=False, data_dir=data_dir or given.data_dir)
    return [(path, ["train", *spec.argv(), *replace(outputs, json=str(path)).argv()])
            for path, spec in specs(name, dataset, out, epochs, blocks, extra, runs)]


def run_key(argv):
    """A `train` command's run: its spec's resolved settings (outputs ignored), as sorted (name, value) pairs; two
    commands with the same key are the same run, e.g. `--seed 42` and no seed."""
    return tuple(sorted(spec_from_argv(argv).settings().items()))


class Interrupted(Exception):
    """SIGINT or SIGTERM reached the grid."""


STOP = threading.Event()
SLURM_THREADS = 2  # a SLURM job's CPUs (and torch threads) unless --threads says otherwise


def last_error(path):
    """The last `error: ...` line of a run's log (why it failed), or ''."""
    try:
        lines = path.with_suffix(".log").read_text(errors="replace").splitlines()
    except OSError:
        return ""
    return next((line for line in reversed(lines) if line.startswith("error: ")), "")


def copy_run(src, dst):
    """Record a run that is identical to a finished one (same command but the output) under a second name;
    `same_run_as` names the run that was made, relative to the results folder (`<out>/<dataset>/<grid>/`)."""
    record = json.loads(Path(src).read_text())
    dst = Path(dst)
    record.setdefault("same_run_as", Path(os.path.relpath(Path(src).resolve(), dst.parent.parent.parent.resolve())
                                          ).as_posix())
    dst.parent.mkdir(parents=True, exist_ok=True)
    write_json(dst, record)


def own_expect(argv):
    """The fields a record made by `train` `argv` must hold (its own command says what they are)."""
    spec = spec_from_argv(argv)
    expect = {"dataset": spec.dataset, "model": spec.model, "epochs": spec.epochs, "seed": spec.seed,
              "blocks": spec.blocks if spec.model == "qt" else None}
    if spec.control:  # a control may have no circuit (its record's blocks: None); its command still says --blocks
        del expect["blocks"]
    return expect


def inspect(path):
    """(record or None, run key or None, problems) of the JSON at `path`: `record_problems` of its content
    against its own command and the dataset folder it sits in (`<out>/<dataset>/<grid>/<run>.json`)."""
    try:
        record = json.loads(Path(path).read_text())
        argv = shlex.split(record["command"])[3:]
        key = run_key(argv)
        expect = own_expect(argv)
    except (OSError, ValueError, KeyError, TypeError, AttributeError, SystemExit) as e:
        return None, None, [f"{type(e).__name__}: {str(e)[:80]}"]
    folder = Path(path).parent.parent.name
    if folder in HEADLINE_BLOCKS and folder != expect["dataset"]:
        return record, key, [f"a {expect['dataset']} run in the {folder} folder"]
    return record, key, record_problems(record, expect)


def key_diff(have, want):
    """'epochs 1 (this grid: 10), n_train 256 (this grid: None)': how two run keys differ."""
    have, want = dict(have), dict(want)
    return ", ".join(f"{k} {have.get(k)!r} (this grid: {want.get(k)!r})" for k in sorted(set(have) | set(want))
                     if have.get(k) != want.get(k))


def read_record(path):
    """(record, run key) of the finished run at `path`, or None (with a note naming the file) when it is not a
    finished run's JSON that fits its command and folder."""
    record, key, problems = inspect(path)
    if problems:
        print(f"  not a finished run, will be redone: {path} ({'; '.join(problems)[:160]})", flush=True)
        return None
    return record, key


def diverged(path, argv):
    """True when `path` is this command's record of a run that diverged (a rerun would diverge again)."""
    record, key, _ = inspect(path)
    return record is not None and key == run_key(argv) and bool(record.get("diverged"))


def done(path, argv):
    """True when `path` holds the finished record of exactly this command (recipe, data scale, epochs...), or its
    record of a diverged run (kept: --force reruns it)."""
    if not Path(path).exists():
        return False
    if diverged(path, argv):
        print(f"  diverged before, kept (--force reruns it): {path}", flush=True)
        return True
    found = read_record(path)
    if found is not None and found[1] != run_key(argv):
        print(f"  {path} holds another run ({key_diff(found[1], run_key(argv))})", flush=True)
        return False
    return found is not None


def replaced(path, argv):
    """Why running `argv` would replace a finished run of another command at `path` (None if it would not)."""
    if not Path(path).exists():
        return None
    _, key, problems = inspect(path)
    if problems or key == run_key(argv):
        return None
    return (f"{path} holds a finished run of another command ({key_diff(key, run_key(argv))}); pass --force to "
            "replace it, or write this grid elsewhere with --out")


def placement_problems(path, root, grids=None):
    """What makes the record at `root/<dataset>/<grid>/<run>.json` unfit to stand there: `record_problems` of
    its content against its own command, and that command against the one its grid runs under that name (the
    same dataset, recipe and seed; at the record's own epochs, data sizes and blocks, as the grid's options
    set them, which the report compares across a grid). An empty list when it fits. `grids`: a dict that keeps
    the grids' planned runs between calls on one unchanged `root` (a control grid's runs follow its records)."""
    path = Path(path)
    record, key, problems = inspect(path)
    if problems:
        return problems
    dataset, name = path.parent.parent.name, path.parent.name
    if name not in GRIDS:
        return [f"no grid is called {name!r} (grids: {', '.join(GRIDS)})"]
    args = dict(key)
    extra = tuple(x for k in ("n_train", "n_test") if args.get(k) for x in (f"--{k.replace('_', '-')}", str(args[k])))
    try:
        blocks = args.get("blocks") if name != "blocks" and args.get("model") == "qt" else None
        grid = (name, dataset, record["epochs"], extra, blocks)
        grids = {} if grids is None else grids
        if grid not in grids:
            grids[grid] = {p.stem: run_key(argv) for p, argv in commands(name, dataset, root, record["epochs"],
                                                                        blocks=blocks, extra=list(extra))}
        expected = grids[grid]
    except ValueError as e:
        return [str(e)[:160]]
    if path.stem not in expected:
        return [f"the {name} grid has no run called {path.stem}"]
    if expected[path.stem] != key:
        return [f"made by another command than its grid's {path.stem}: {key_diff(key, expected[path.stem])}"]
    return []


def finished(out):
    """{run key: JSON path} of the finished runs under `out` (broken files are named and skipped)."""
    runs = {}
    for path in sorted(Path(out).glob("**/*.json")):
        found = read_record(path)
        if found is not None and "same_run_as" not in found[0]:
            runs.setdefault(found[1], path)
    return runs


def run_memory(argv):
    """Estimated peak memory (bytes) of one `train` command (qt_helpers.limits)."""
    spec = spec_from_argv(argv)
    n = spec.qubits or n_qubits_for(num_params(cnn(spec.dataset))) if spec.model == "qt" else None
    images = None if spec.n_train is None else spec.n_train + (spec.n_test or INFO[spec.dataset].n_test)
    return run_bytes(spec.dataset, n, spec.blocks, spec.batch_size, images)


def grid_lock(out):
    """The lock of an output folder: one grid process at a time writes there."""
    Path(out).mkdir(parents=True, exist_ok=True)
    lock = filelock.FileLock(str(Path(out) / ".grid.lock"))
    try:
        lock.acquire(timeout=0)
    except filelock.Timeout:
        msg = (f"another grid is running in {out} (it holds {lock.lock_file}); wait for it to end, or "
               "write elsewhere with --out")
        raise ValueError(msg) from None
    return lock


def run_commands(cmds, out, jobs=1, force=False, threads=None, executor="local", executor_folder=None, **slurm):
    """Run the missing ones of [(json path, argv)], `jobs` at a time, each as `train_job` through the executor
    `executor` (qtbook.executor: `local`, `submitit-local` or `slurm`, with submitit's files in `executor_folder`,
    default `<out>/.submitit`, and `slurm`'s options: partition, time_min, mem_gb); an identical command runs
    once. Refuses (ValueError) to replace a finished run of another command without `force`, or to start more
    runs at once than this machine's memory holds; raises Interrupted on SIGINT or SIGTERM, after stopping its
    runs (the local pool's processes, or submitit's jobs)."""
    check_executor(executor, slurm.get("partition"))
    lock = grid_lock(out)
    try:
        return _run_commands(cmds, out, jobs, force, threads, executor, executor_folder, slurm)
    finally:
        lock.release()


def _result(future):
    """(exit code, why it has none) of a run's future: an executor's error (a killed worker, a failed job) is
    exit 1 with its reason."""
    try:
        return future.result(), ""
    except Exception as e:  # one lost run must not cost the grid's others
        return 1, f"{type(e).__name__}: {str(e).strip()}"[:200]


def _run_commands(cmds, out, jobs, force, threads, kind, folder, slurm):
    todo = {}  # key -> [(path, argv)]: the first is run, the others get a copy of its JSON
    for path, argv in cmds:
        if force or not done(path, argv):
            todo.setdefault(run_key(argv), []).append((path, argv))
    if not force:
        clash = next((why for runs in todo.values() for path, argv in runs if (why := replaced(path, argv))), None)
        if clash:
            raise ValueError(clash)
    at_once = min(jobs, len(todo))
    if todo and kind != "slurm":  # on a cluster, each job asks for its memory (--slurm-mem-gb)
        need = max(run_memory(argv) for runs in todo.values() for _, argv in runs)
        try:
            check_memory(need * at_once, f"{at_once} run{'s' * (at_once > 1)} at once (about {need / 2**30:.1f} "
                                         "GiB each)")
        except MemoryError as e:
            msg = f"{e}; use fewer --jobs"
            raise ValueError(msg) from None
    threads = threads or (SLURM_THREADS if kind == "slurm" else max(1, (os.cpu_count() or 1) // jobs))
    where = "" if kind == "local" else f" through {kind}"
    print(f"{len(todo)} runs to do, {jobs} at a time with {threads} thread(s) each{where}", flush=True)
    failed = []
    STOP.clear()
    if not todo:
        return failed
    ex = make_executor(kind, max(1, at_once), folder or Path(out) / ".submitit", threads, **slurm)

    def work(runs):
        if STOP.is_set():
            return
        (path, argv), *copies = runs
        same = None if force else finished(out).get(run_key(argv))  # another grid (or process) ran it
        lost = ""
        if same is not None:
            rc = 0
            copy_run(same, path)
        else:
            ckpt = path.with_suffix(".pt")  # every epoch's checkpoint: a cut-off grid resumes its runs
            resume = ckpt.exists() and not force
            # --overwrite: the JSON there, if any, was judged above (unfinished or broken) and is replaced
            future = ex.submit(train_job, argv + ["--checkpoint", str(ckpt)] + (["--resume"] if resume else [])
                               + ["--overwrite"], path.with_suffix(".log"), threads)
            if kind != "local":
                print(f"  submitted {path} as job {future.job.job_id} (submitit's log: {future.job.paths.stdout})",
                      flush=True)
            rc, lost = _result(future)
            if rc == 0:
                ckpt.unlink(missing_ok=True)
        if STOP.is_set() and rc:
            return
        why = lost or last_error(path)[7:] if rc else ""
        state = ("same as " + str(same) if same else "done" if rc == 0 else
                 f"FAILED (exit {rc}): {why or 'see the .log'}")
        print(f"  {state}: {path}", flush=True)
        if rc:
            failed.append(path)
        else:
            for other, _ in copies:
                copy_run(path, other)

    def stop(signum, _frame):
        raise Interrupted(signal.Signals(signum).name)

    main_thread = threading.current_thread() is threading.main_thread()
    old = {s: signal.signal(s, stop) for s in (signal.SIGINT, signal.SIGTERM)} if main_thread else {}
    pool = ThreadPoolExecutor(max(1, at_once))  # each thread hands one run at a time to the executor
    try:
        futures = [pool.submit(work, runs) for runs in todo.values()]
        for f in futures:
            f.result()
    except (Interrupted, KeyboardInterrupt):
        STOP.set()
        ex.stop()  # pending runs cancelled, running ones stopped (their finished epochs kept)
        pool.shutdown(wait=True, cancel_futures=True)
        raise Interrupted() from None
    finally:
        pool.shutdown(wait=True)
        ex.shutdown()
        for s, handler in old.items():
            signal.signal(s, handler)
    return failed


def build_grid_parser():
    """The parser of `python -m qtbook.experiments`."""
    e = Parser(prog="python -m qtbook.experiments", description=__doc__,
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
    x = e.add_argument_group("where the runs run (qtbook.executor)")
    x.add_argument("--executor", default="local", choices=KINDS,
                   help="local: a process pool on this machine; submitit-local: submitit's local executor; "
                   "slurm: one SLURM job per run through submitit (default: local)")
    x.add_argument("--executor-folder", default=None,
                   help="submitit's job files and logs (default: <out>/.submitit)")
    x.add_argument("--slurm-partition", default=None, help="the SLURM partition of the jobs (needed for slurm)")
    x.add_argument("--slurm-time", type=int, default=None, metavar="MINUTES",
                   help="each job's time limit in minutes (default: 1440); a job cut off resumes when requeued")
    x.add_argument("--slurm-mem-gb", type=int, default=None, help="each job's memory in GB (default: the partition's)")
    return e


RESULTS = Path(__file__).resolve().parents[2] / "results" / "runs"  # the science results the book reads


def check_args(args):
    """Check the `experiment` arguments before any work (raises ValueError with the message to print)."""
    for flag in ("epochs", "blocks", "jobs", "threads", "n_train", "n_test", "slurm_time", "slurm_mem_gb"):
        value = getattr(args, flag)
        if value is not None and value < 1:
            msg = f"--{flag.replace('_', '-')} must be a whole number >= 1, got {value}"
            raise ValueError(msg)
    for name in args.grids:
        if name not in GRIDS:
            msg = f"unknown grid {name!r}; choose one of {', '.join(GRIDS)}"
            raise ValueError(msg)
    for d in args.dataset:
        resolve_name(d)
    given = [f"--{k.replace('_', '-')}" for k in ("slurm_partition", "slurm_time", "slurm_mem_gb")
             if getattr(args, k) is not None]
    if given and args.executor != "slurm":
        msg = (f"{' and '.join(given)} set{'s' * (len(given) == 1)} SLURM jobs; add --executor slurm, "
               "or leave them out")
        raise ValueError(msg)
    if args.executor_folder is not None and args.executor == "local":
        msg = "--executor-folder holds submitit's files; add --executor submitit-local or slurm"
        raise ValueError(msg)
    if not args.dry_run:
        check_executor(args.executor, args.slurm_partition)
    out = Path(args.out).resolve()
    if (args.n_train or args.n_test) and (out == RESULTS or RESULTS in out.parents):
        msg = (f"--n-train/--n-test make subset runs, which must not mix with the full-scale results in "
               f"{args.out}; write them elsewhere, e.g. --out build/subset-runs")
        raise ValueError(msg)


def slurm_options(args):
    """`make_executor`'s SLURM options from the grid's arguments."""
    if args.executor != "slurm":
        return {}
    return {"partition": args.slurm_partition, "time_min": args.slurm_time, "mem_gb": args.slurm_mem_gb}


def main(argv=None):
    """Run the grids (all grids x datasets, in that order): 0 on success, 2 for a user error (one line,
    `error: ...`), 1 if a run failed."""
    args = build_grid_parser().parse_args(sys.argv[1:] if argv is None else argv)
    # the protocol grid reads the tune grid's results, so it runs after the other grids named with it; the control
    # grid's seed runs read its trials', so it runs in both phases
    later = ("protocol",) if args.dry_run else ("protocol", "control")
    phases = [[g for g in args.grids if g != "protocol"], [g for g in args.grids if g in later]]
    forced = set()  # with --force, a run is redone once: not again in the second phase
    for i, grids in enumerate(p for p in phases if p):
        try:
            check_args(args)
            extra = [x for k in ("n_train", "n_test") if getattr(args, k)
                     for x in (f"--{k.replace('_', '-')}", str(getattr(args, k)))]
            cmds = [c for name in grids for d in args.dataset
                    for c in commands(name, d, args.out, args.epochs, args.data_dir, args.blocks, extra, args.runs)]
            if not cmds:
                msg = (f"no run of {', '.join(grids)} matches {' '.join(args.runs)}; "
                       "see the run names with --dry-run")
                raise ValueError(msg)
        except ValueError as e:
            if args.debug:
                raise
            if i and args.dry_run:
                e = ValueError(f"{e}; --dry-run prints the protocol grid's runs once the tune grid has run")
            print(f"error: {str(e).strip()}", file=sys.stderr)
            return 2
        if args.dry_run:
            for _, run_argv in cmds:
                print("python -m qt_helpers", shlex.join(run_argv))
            continue
        cmds = [c for c in cmds if c[0] not in forced]
        forced.update(path for path, _ in cmds if args.force)
        try:
            if cmds and run_commands(cmds, args.out, args.jobs, args.force, args.threads, args.executor,
                                     args.executor_folder, **slurm_options(args)):
                return 1  # a failed tune run leaves the protocol nothing to choose from
        except ValueError as e:
            if args.debug:
                raise
            print(f"error: {str(e).strip()}", file=sys.stderr)
            return 2
        except Interrupted:
            again = shlex.join(["python", "-m", "qtbook.experiments", *(sys.argv[1:] if argv is None
                                                                                   else argv)])
            print(f"interrupted: the grid's runs were stopped, their finished epochs kept; resume with: {again}",
                  file=sys.stderr, flush=True)
            return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
