"""Tables and plots of the experiment grids' results (`results/runs/<dataset>/<grid>/<run>.json`).

    python -m qtbook.report --runs results/runs     # print every table as Markdown
"""
import argparse
import collections
import itertools
import json
import re
import shlex
import statistics
import sys
from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd
from matplotlib.ticker import LogLocator, NullFormatter, StrMethodFormatter

from qt_helpers.plot import model_color

from .experiments import (
    BLOCKS_RECIPES,
    HEADLINE_BLOCKS,
    SEEDS,
    SEEDS_RECIPES,
    ablation_rows,
    blocks_run,
    default_epochs,
    placement_problems,
    shots,
    tune_rows,
)
from .notebook import markdown_table, percent
from .published import QT_BLOCKS, published_qt, qt_params

TITLES = {"mnist": "MNIST", "fashion_mnist": "FashionMNIST", "cifar10": "CIFAR-10"}  # as the book names them
RUNS_DIR = Path(__file__).resolve().parents[2] / "results" / "runs"
ABLATION_LABELS = {
    "reference": "reference recipe (affine mapping, lr 1e-4, plateau)",
    "lr-3e-3": "+ lr 3e-3",
    "lr-3e-3-cosine": "+ lr 3e-3, cosine schedule (= lr-cosine recipe)",
    "improved": "+ ReLU mapping model (= improved recipe)",
    "improved-trainable-transform": "improved + trainable γ, β, α",
    "improved-standardize": "improved + weight standardisation",
    "improved-small-init": "improved + small-angle init (0.01·randn, not U(-π, π))",
    "improved-batch-512": "improved, batch 512 instead of 128",
}


SEED_RUN = re.compile(r"^(?P<family>.+)-seed(?P<seed>\d+)$")  # 'qt-improved-seed43': one seed of a model


def load_runs(root=None):
    """One pandas DataFrame of every finished run under `root` (default: the repo's results/runs), one row per
    record: where it sits (dataset, grid, run; `family` and `seed_run` for a model's seeds `<family>-seed<S>`),
    what it trained (model, epochs, lr, seed, trained parameters), what it scored (test and validation accuracy),
    its training seconds and machine, `copy` (a copy of a run made once for two grids) and the `record` itself.
    Records that do not fit where they sit are left out, with a line each on stderr."""
    root = Path(root or RUNS_DIR)
    if not root.is_dir():
        msg = f"no results in {root}: run `python -m qtbook.experiments ...` first"
        raise FileNotFoundError(msg)
    rows, left_out, grids = [], [], {}
    for path in sorted(root.glob("*/*/*.json")):
        problems = placement_problems(path, root, grids)
        if problems:
            left_out.append(f"{path.relative_to(root)}: {'; '.join(problems)[:200]}")
            continue
        r = json.loads(path.read_text())
        seed = SEED_RUN.match(path.stem)
        rows.append({"dataset": path.parent.parent.name, "grid": path.parent.name, "run": path.stem,
                     "family": seed["family"] if seed else path.stem,
                     "seed_run": int(seed["seed"]) if seed else None, "model": r["model"], "epochs": r["epochs"],
                     "scale": scale(r), "lr": r["lr"], "seed": r["seed"], "params": trained_params(r),
                     "test_accuracy": r.get("test_accuracy"), "val_accuracy": r.get("val_accuracy"),
                     "seconds": run_seconds(r), "machine": machine(r), "copy": "same_run_as" in r,
                     "path": path.relative_to(root), "record": r})
    runs = pd.DataFrame(rows, columns=COLUMNS)
    fits = pd.Series(True, index=runs.index)
    for (dataset, grid), g in runs.groupby(["dataset", "grid"], sort=False):
        # one table, one scale: the grid's default (full data), else the scale most of its runs have
        counts = g["scale"].value_counts(sort=False)
        main = max(counts.index, key=lambda s: (s[0] == default_epochs(grid, dataset) and s[1:] == (None, None),
                                                counts[s]))
        for i in g.index[g["scale"] != main]:
            fits[i] = False
            left_out.append(f"{runs.loc[i, 'path']}: {scale_text(runs.loc[i, 'scale'])}, while the {grid} grid's "
                            f"other runs are {scale_text(main)}")
    if left_out:
        print(f"left out of the tables, as they do not fit where they sit ({len(left_out)}):\n  "
              + "\n  ".join(left_out), file=sys.stderr)
    return runs[fits].reset_index(drop=True)


COLUMNS = ["dataset", "grid", "run", "family", "seed_run", "model", "epochs", "scale", "lr", "seed", "params",
           "test_accuracy", "val_accuracy", "seconds", "machine", "copy", "path", "record"]


def select(runs, dataset, grid=None):
    """The rows of one dataset (and grid) of `load_runs`' frame."""
    keep = runs["dataset"] == dataset
    return runs[keep if grid is None else keep & (runs["grid"] == grid)]


def records(runs, dataset, grid):
    """{run: record} of one grid of one dataset, in run-name order ({} if it has none)."""
    g = select(runs, dataset, grid)
    return dict(zip(g["run"], g["record"], strict=True))


def datasets(runs):
    """The datasets that have runs, in folder order."""
    return list(runs["dataset"].unique())


def grid_names(runs, dataset):
    """The grids of `dataset` that have runs."""
    return list(select(runs, dataset)["grid"].unique())


def scale(r):
    """(epochs, training images asked for, test images asked for) of a run; None means the full set."""
    words = shlex.split(r["command"])
    args = dict(itertools.pairwise(words))
    return r["epochs"], _int(args.get("--n-train")), _int(args.get("--n-test"))


def _int(text):
    return None if text is None else int(text)


def scale_text(s):
    """'10 epochs, full data' or '1 epochs, 256/256 images'."""
    sizes = "full data" if s[1:] == (None, None) else f"{s[1] or 'all'}/{s[2] or 'all'} images"
    return f"{s[0]} epoch{'s' * (s[0] != 1)}, {sizes}"


def machine(r):
    """Where a run was made, as its record names it ('x86_64 CPU (1 thread)', 'NVIDIA H100 80GB HBM3', or 'CPU'
    for the first records, which named none; older records wrote '1 threads')."""
    return (r.get("device_name") or r.get("device", "?").upper()).replace("(1 threads)", "(1 thread)")


def trained_params(r):
    """The parameters a run trains: its own count (a control's), else QT's, or the classical CNN's."""
    return r.get("trainable_params") or (r["qt_params"] if r["qt_params"] is not None else r["cnn_params"])


def protocol(r):
    """One line that says how a run was trained."""
    return (f"{r['n_train']:,} training / {r['n_test']:,} test images, {r['epochs']} epochs, batch {r['batch_size']}, "
            f"lr {r['lr']:g} ({r.get('recipe', {}).get('schedule', 'plateau')}), seed {r['seed']}")


def mean_std(values):
    """(mean, sample standard deviation) of a list (std 0 for one value)."""
    return statistics.mean(values), statistics.stdev(values) if len(values) > 1 else 0.0


# the seeds grid's models: label -> (run name prefix, short key of the numbers the chapter glues)
SEEDS_MODELS = {**{f"QT {r}": (f"qt-{r}", "qt" if r == "improved" else "qt_" + r.replace("-", "_"))
                   for r in SEEDS_RECIPES},
                "QT chosen on validation": ("qt-chosen", "qt_chosen"),  # the protocol grid's
                "classical CNN": ("cnn", "cnn"), "classical CNN, QT's budget": ("cnn-budget", "budget")}


def tune_trials(runs, dataset):
    """{model ('qt' or 'classical'): (trials run, trials in the tune grid)} of `dataset`."""
    planned = collections.Counter("qt" if m == "qt" else "classical"
                                  for m, _, _ in tune_rows(dataset, HEADLINE_BLOCKS[dataset]))
    ran = select(runs, dataset, "tune").groupby("model").size()
    return {m: (int(ran.get(m, 0)), n) for m, n in planned.items()}


def tune_choices(runs, dataset):
    """{model ('qt' or 'classical'): (trial, validation accuracy, lr, largest lr tried?)}: each model's best trial
    of the tune grid by its last epoch's validation accuracy (the test set unread; a tie goes to the first), once
    all its trials have run (as the protocol grid chooses)."""
    tune = select(runs, dataset, "tune")
    best = tune.loc[tune.groupby("model", sort=False)["val_accuracy"].idxmax()]
    largest = tune.groupby("model")["lr"].max()
    complete = {m for m, (ran, planned) in tune_trials(runs, dataset).items() if ran >= planned}
    return {b.model: (b.run, float(b.val_accuracy), float(b.lr), bool(b.lr == largest[b.model]))
            for b in best.itertuples() if b.model in complete}


def tune_table(runs, dataset):
    """Markdown: every trial of the tune grid with its validation accuracy (the test set unread), **bold** for
    each model's choice (`tune_choices`), then a sentence naming the choices (or how many trials are still to
    run)."""
    name = {"qt": "QT", "classical": "the budget CNN"}
    picks = sorted(tune_choices(runs, dataset).items(), key=lambda p: p[0] != "qt")  # QT first
    best = {t for _, (t, _, _, _) in picks}
    tune = select(runs, dataset, "tune").sort_values(["model", "run"], key=lambda c: c != "qt" if c.name == "model"
                                                     else c)
    table = pd.DataFrame({"model": tune["model"].map(lambda m: "QT" if m == "qt" else "classical CNN, QT's budget"),
                          "trial": [f"**{t}**" if t in best else t for t in tune["run"]],
                          "trained parameters": tune["params"].map("{:,}".format), "epochs": tune["epochs"],
                          "validation accuracy": tune["val_accuracy"].map(percent)})
    chosen = " and ".join(f"{name[m]} `{t}` ({percent(acc)} on validation"
                          + (", at the largest learning rate tried: a wider grid might do better)" if edge else ")")
                          for m, (t, acc, _, edge) in picks)
    waiting = "; ".join(f"{name[m]} not chosen yet ({ran} of {planned} trials run)"
                        for m, (ran, planned) in sorted(tune_trials(runs, dataset).items(), key=lambda p: p[0] != "qt")
                        if m not in dict(picks))
    return markdown_table(table, left=2) + "\n\n" + "; ".join(
        x for x in (f"Chosen: {chosen}" if chosen else "", waiting) if x) + "."


def seed_rows(runs, dataset, grid, family):
    """The finished seeds of one model of a grid (its runs `<family>-seed<S>`, S in SEEDS), in seed order."""
    g = select(runs, dataset, grid)
    return g[(g["family"] == family) & g["seed_run"].isin(SEEDS)].sort_values("seed_run")


def seed_summary(done):
    """{'params', 'accs', 'seeds', 'mean', 'std', 'epochs', 'lr'} of one model's seed rows (`seed_rows`)."""
    accs = [float(a) for a in done["test_accuracy"]]
    mean, std = mean_std(accs)
    first = done.iloc[0]
    return {"params": int(first["params"]), "accs": accs, "seeds": [int(s) for s in done["seed"]], "mean": mean,
            "std": std, "epochs": int(first["epochs"]), "lr": float(first["lr"])}


def seeds_summary(runs, dataset, grid="seeds"):
    """{model: `seed_summary`} of each model of the seeds (or long, or protocol) grid that has finished seeds."""
    done = {model: seed_rows(runs, dataset, grid, family) for model, (family, _) in SEEDS_MODELS.items()}
    return {model: seed_summary(d) for model, d in done.items() if len(d)}


def accuracy_cell(s):
    """'97.00 ± 0.10 %' over several seeds, '97.00 %' for one."""
    return percent(s["mean"], s["std"]) if len(s["accs"]) > 1 else percent(s["mean"])


def per_seed(values, fmt="{:.2f}", scale=100):
    """'97.10, 96.95, 97.02': per-seed values (fractions shown in %, or points with fmt '{:+.2f}' and scale 1)."""
    return ", ".join(fmt.format(scale * v) for v in values)


def seeds_table(runs, dataset, grid="seeds"):
    """Markdown: mean ± std over seeds of each QT recipe, the full CNN and the CNN with QT's budget."""
    rows = [(m, f"{s['params']:,}", accuracy_cell(s), per_seed(s["accs"]), len(s["accs"]))
            for m, s in seeds_summary(runs, dataset, grid).items()]
    return markdown_table(("model", "trained parameters", "test accuracy (mean ± std)", "per seed (%)", "seeds"), rows)


def plot_curves(runs, dataset, ax=None, grid="seeds"):
    """Test accuracy after each epoch of the seeds (or long) grid's models: the mean over seeds, shaded from
    min to max."""
    if ax is None:
        _, ax = plt.subplots(figsize=(7, 4))
    for model, (family, _) in SEEDS_MODELS.items():
        done = list(seed_rows(runs, dataset, grid, family)["record"])
        if not done:
            continue
        curves = [r["history"]["test_acc"] for r in done]
        epochs = range(1, min(map(len, curves)) + 1)
        per_epoch = [[100 * c[e - 1] for c in curves] for e in epochs]
        line, = ax.plot(epochs, [statistics.mean(a) for a in per_epoch], "o-", ms=3, color=model_color(model),
                        label=f"{model} ({trained_params(done[0]):,} parameters"
                              + (f", {len(done)} seed{'s' * (len(done) > 1)} only)" if len(done) < len(SEEDS) else ")"))
        ax.fill_between(epochs, [min(a) for a in per_epoch], [max(a) for a in per_epoch], color=line.get_color(),
                        alpha=0.2)
    return _accuracy_axes(ax, "epoch", dataset)


CONTROL_LABELS = {"qt": "QT chosen", "classical-generator": "classical generator", "low-rank-cnn": "low-rank CNN",
                  "frozen-circuit": "frozen random circuit", "mapping-only": "mapping model alone"}


def control_summary(runs, dataset):
    """{label: `seed_summary` + 'diffs', 'tried'} of the control grid (chapter 7): each variant's test accuracy over
    the seeds, its paired difference to QT seed by seed (in points), and the learning rates it tried on validation
    (QT's: its tune grid's)."""
    grid = select(runs, dataset, "control")
    qt = dict(zip(*(seed_rows(runs, dataset, "control", "qt")[c] for c in ("seed", "test_accuracy")), strict=True))
    out = {}
    for variant, label in CONTROL_LABELS.items():
        done = seed_rows(runs, dataset, "control", variant)
        if len(done):
            tried = (select(runs, dataset, "tune").query("model == 'qt'") if variant == "qt"
                     else grid[grid["run"].str.startswith(f"{variant}-lr")])["lr"]
            out[label] = seed_summary(done)
            out[label]["diffs"] = [100 * (a - qt[seed]) for seed, a in zip(done["seed"], done["test_accuracy"],
                                                                          strict=True) if seed in qt]
            out[label]["tried"] = sorted(set(tried))
    return out


def control_table(runs, dataset):
    """Markdown: the control grid's variants, trainable parameters, learning rate (of those tried), test accuracy
    over seeds, and the paired difference to QT per seed (points)."""
    rows = [(label, f"{s['params']:,}", f"{s['lr']:g} (of {', '.join(f'{x:g}' for x in s['tried'])})",
             accuracy_cell(s), per_seed(s["accs"]), "–" if label == "QT chosen" else per_seed(s["diffs"], "{:+.2f}", 1))
            for label, s in control_summary(runs, dataset).items()]
    return markdown_table(("variant", "trained parameters", "lr chosen on validation (of those tried)",
                           "test accuracy", "per seed (%)", "minus QT, per seed (points)"), rows)


def control_trials_table(runs, dataset):
    """Markdown: every finished trial of the control grid with its validation accuracy (the test set unread),
    **bold** for each variant's choice once its seeds have started, then a sentence naming the variants still
    being tuned."""
    grid = select(runs, dataset, "control")
    rows, tuning = [], []
    for variant, label in list(CONTROL_LABELS.items())[1:]:  # QT's trials are its tune grid's
        trials = grid[grid["run"].str.startswith(f"{variant}-lr")].sort_values("lr")
        seeds = seed_rows(runs, dataset, "control", variant)
        pick = float(seeds["lr"].iloc[0]) if len(seeds) else None
        rows += [(label, f"**{t.run}**" if t.lr == pick else t.run, f"{t.params:,}", t.epochs,
                  percent(t.val_accuracy)) for t in trials.itertuples()]
        if pick is None:
            tuning.append(f"{label} ({len(trials)} trial{'s' * (len(trials) != 1)} finished)")
    table = markdown_table(("variant", "trial", "trained parameters", "epochs", "validation accuracy"), rows, left=2)
    return table + ("\n\nStill being tuned, no seed run yet: " + "; ".join(tuning) + "." if tuning else "")


def control_progress(runs, dataset):
    """One sentence on a dataset's control grid as far as it has run (chapter 7 and the verdict): each variant's
    test accuracy over its seeds so far with its paired difference to QT, or, before its first seed, its best
    validation accuracy so far; then the controls ahead of QT on any seed; '' before the grid's first trial."""
    grid = select(runs, dataset, "control")
    if grid.empty:
        return ""
    summary, parts = control_summary(runs, dataset), []
    for variant, label in CONTROL_LABELS.items():
        if label in summary:
            s, n, d = summary[label], len(summary[label]["accs"]), summary[label]["diffs"]
            seeds = f"{n} seeds" if n == len(SEEDS) else f"seed{'s' * (n > 1)} {', '.join(map(str, s['seeds']))}"
            gap = ("" if variant == "qt" or not d else f", {d[0]:+.2f}" if len(d) == 1 else
                   f", {min(d):+.2f} to {max(d):+.2f}")
            parts.append(f"{label} {accuracy_cell(s)} ({seeds}{gap})")
        elif len(trials := grid[grid["run"].str.startswith(f"{variant}-lr")]):
            parts.append(f"{label} no seed yet ({percent(trials['val_accuracy'].max())} on validation, best of "
                         f"{len(trials)} trial{'s' * (len(trials) > 1)})")
    ahead = [f"the {label} (on {sum(x > 0 for x in s['diffs'])} of {len(s['diffs'])} seed{'s' * (len(s['diffs']) > 1)})"
             for label, s in summary.items() if s["diffs"] and max(s["diffs"]) > 0 and label != "QT chosen"]
    return (f"On {TITLES[dataset]} so far (test accuracy; points from QT, seed by seed): " + "; ".join(parts) + ". "
            + (f"Ahead of QT: {' and '.join(ahead)}." if ahead else "No control is ahead of QT on any seed run."))


def plot_controls(runs, datasets=None, axes=None):
    """Test accuracy of each control variant, one panel per dataset (default: each with control runs): every seed
    a point, the mean a bar."""
    datasets = datasets or [d for d in HEADLINE_BLOCKS if control_summary(runs, d)]
    if axes is None:
        _, axes = plt.subplots(1, len(datasets), figsize=(5 * len(datasets), 3.2), squeeze=False)
        axes = axes[0]
    for ax, dataset in zip(axes, datasets, strict=True):
        summary = control_summary(runs, dataset)
        for i, label in enumerate(CONTROL_LABELS.values()):  # a variant without seeds keeps its place, empty
            if label in summary:
                s, color = summary[label], model_color(label)
                ax.bar(i, 100 * s["mean"], color=color, alpha=0.35, width=0.6)
                ax.plot([i] * len(s["accs"]), [100 * a for a in s["accs"]], "o", color=color, ms=5)
        ax.set_xticks(range(len(CONTROL_LABELS)), [f"{label}\n{summary[label]['params']:,} params" if label in summary
                                                   else f"{label}\nno seed yet" for label in CONTROL_LABELS.values()],
                      rotation=30, ha="right", fontsize=8)
        ax.axhline(100 * CHANCE, color="grey", lw=0.8, ls=":")
        ax.set_ylim(0, 100)
        ax.set_ylabel("test accuracy (%), bars from 0")
        ax.set_title(f"{TITLES[dataset]}: seeds as points, mean as bar (dotted: chance)", fontsize=9)
        ax.grid(axis="y", alpha=0.3)
    return axes


def blocks_rows(runs, dataset, recipe="improved"):
    """[(L, QT params, QT accuracy, budget CNN params, its accuracy, published QT %)] of the blocks grid, for
    QT with `recipe` (QT params: the run's, else the published count at L)."""
    grid = records(runs, dataset, "blocks")
    rows = []
    for L in QT_BLOCKS[dataset]:
        qt, cl = grid.get(blocks_run(recipe, L)), grid.get(f"cnn-budget-L{L}")
        n = qt["qt_params"] if qt else qt_params(dataset, L)
        rows.append((L, n, qt and qt["test_accuracy"], cl and cl["cnn_params"], cl and cl["test_accuracy"],
                     published_qt(dataset, L)))
    return rows


def blocks_table(runs, dataset):
    """Markdown of `blocks_rows`, a QT column per recipe."""
    qt = {r: blocks_rows(runs, dataset, r) for r in BLOCKS_RECIPES}
    rows = [(L, f"{n:,}", *(percent(qt[r][i][2]) for r in BLOCKS_RECIPES), "–" if m is None else f"{m:,}", percent(b),
             percent(p)) for i, (L, n, _, m, b, p) in enumerate(qt[BLOCKS_RECIPES[0]])]
    return markdown_table(("QNN blocks L", "QT parameters", *(f"QT {r}" for r in BLOCKS_RECIPES),
                           "budget CNN parameters", "budget CNN", "published QT (reference recipe)"), rows)


def _accuracy_axes(ax, xlabel, title):
    """Label a test-accuracy plot; returns its figure."""
    ax.set_xlabel(xlabel)
    ax.set_ylabel("test accuracy (%)")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return ax.figure


def plot_blocks(runs, dataset, ax=None):
    """Test accuracy vs trained parameters: QT, the classical CNN at the same budgets, published QT, full CNN."""
    if ax is None:
        _, ax = plt.subplots(figsize=(7, 4))
    for recipe, marker in zip(BLOCKS_RECIPES, "o^", strict=True):
        rows = blocks_rows(runs, dataset, recipe)
        done = [r for r in rows if r[2] is not None]
        if done:
            ax.plot([r[1] for r in done], [100 * r[2] for r in done], f"{marker}-", color=model_color(f"QT {recipe}"),
                    label=f"QT {recipe} (this book)")
    classical = [r for r in rows if r[4] is not None]
    if classical:
        ax.plot([r[3] for r in classical], [100 * r[4] for r in classical], "s-",
                color=model_color("classical CNN, QT's budget"), label="classical CNN, same budget (this book)")
    caveat = "" if dataset == "cifar10" else ", train acc. at L=16"
    pub = [r for r in rows if r[5] is not None]
    ax.plot([r[1] for r in pub], [100 * r[5] for r in pub], "x--", color="gray",
            label=f"QT reference (published{caveat})")
    full = records(runs, dataset, "blocks").get("cnn")
    if full:  # a line, not a point far to the right that would squeeze the sweep into a sliver of the axis
        ax.axhline(100 * full["test_accuracy"], ls=":", color=model_color("classical CNN"),
                   label=f"classical CNN, {full['cnn_params']:,} parameters (off this axis)")
    ax.set_xscale("log")
    ax.xaxis.set_major_locator(LogLocator(subs=(1, 2, 5)))  # 200, 500, 1,000, ... instead of crowded 10^k labels
    ax.xaxis.set_major_formatter(StrMethodFormatter("{x:,.0f}"))
    ax.xaxis.set_minor_formatter(NullFormatter())
    return _accuracy_axes(ax, "trained parameters", dataset)


def ablation_table(runs, dataset):
    """Markdown: each named option's row, its parameters, accuracy and change against the reference row."""
    grid = records(runs, dataset, "ablation")
    ref = grid.get("reference")
    rows = []
    for run, flags in ablation_rows(dataset):
        r = grid.get(run)
        if r is None:
            continue
        delta = "" if ref is None or run == "reference" else f"{100 * (r['test_accuracy'] - ref['test_accuracy']):+.2f}"
        rows.append((ABLATION_LABELS[run], "`" + " ".join(flags) + "`" if flags else "–", f"{r['qt_params']:,}",
                     percent(r["test_accuracy"]), delta))
    return markdown_table(("recipe", "options", "QT parameters", "test accuracy", "Δ vs reference (points)"), rows)


def shots_rows(runs, dataset):
    """[(shots or None for exact, [test accuracy of each seed that ran])] of the shots grid, seeds in order."""
    grid = records(runs, dataset, "shots")
    rows = []
    for s in [*shots(dataset), None]:
        base = "exact" if s is None else f"shots-{s}"
        accs = [grid[name]["test_accuracy"] for name in [base] + [f"{base}-seed{seed}" for seed in SEEDS[1:]]
                if name in grid]
        if accs:
            rows.append((s, accs))
    return rows


def shots_table(runs, dataset):
    """Markdown of `shots_rows`: shots as powers of two and per basis state, mean ± std over the seeds."""
    n = select(runs, dataset, "shots")["record"].iloc[0]["qubits"]
    rows = [("exact (state vector)" if s is None else f"2^{s.bit_length() - 1} = {s:,}",
             "–" if s is None else f"{s / 2**n:g}", percent(*mean_std(accs)) if len(accs) > 1 else percent(accs[0]),
             per_seed(accs), len(accs))
            for s, accs in shots_rows(runs, dataset)]
    return markdown_table(("shots S", "S / 2^n", "test accuracy", "per seed (%)", "seeds"), rows)


def plot_shots(runs, dataset, ax=None):
    """Mean test accuracy vs shots (log scale; bars span the seeds), with the exact-probability runs as a line."""
    if ax is None:
        _, ax = plt.subplots(figsize=(6, 3.5))
    rows = shots_rows(runs, dataset)
    sampled = [(s, [100 * a for a in accs]) for s, accs in rows if s is not None]
    means = [statistics.mean(a) for _, a in sampled]
    ax.errorbar([s for s, _ in sampled], means, yerr=[[m - min(a) for m, (_, a) in zip(means, sampled, strict=True)],
                                                      [max(a) - m for m, (_, a) in zip(means, sampled, strict=True)]],
                fmt="o-", capsize=3, color=model_color("QT improved"), label="probabilities from S shots")
    for s, accs in rows:
        if s is None:
            ax.axhline(100 * statistics.mean(accs), color="0.3", ls="--", label="exact probabilities")
    ax.set_xscale("log", base=2)
    return _accuracy_axes(ax, "shots S per weight generation", dataset)


def run_seconds(r):
    """A run's training seconds: its epochs' times where it resumed from a checkpoint (the record's own
    `train_seconds` counts only the last sitting), else the whole `train` call's."""
    return sum(r["history"]["seconds"]) if r.get("resumed_after_epoch") else r["train_seconds"]


def compute_seconds(runs):
    """Total training seconds of the runs actually made (copies of an identical run are not counted)."""
    return float(runs.loc[~runs["copy"], "seconds"].sum())


def compute_table(runs):
    """Markdown: per dataset and grid, the runs made (copies of a shared run not counted), their training hours
    and the machines they ran on."""
    rows = [(dataset, grid, len(made), int(g["copy"].sum()), f"{made['seconds'].sum() / 3600:.2f}",
             ", ".join(sorted(set(made["machine"]))))
            for (dataset, grid), g in runs.groupby(["dataset", "grid"], sort=False) for made in [g[~g["copy"]]]]
    return markdown_table(("dataset", "experiment", "runs made", "shared copies", "training hours", "machine"), rows)


CHANCE = 0.1  # every dataset here has 10 balanced classes


def findings(runs, dataset):
    """Markdown bullets that state, from the results themselves, how QT compares with the budget CNN."""
    out = []
    for recipe in BLOCKS_RECIPES:
        rows = [r for r in blocks_rows(runs, dataset, recipe) if r[2] is not None and r[4] is not None]
        if rows:
            wins = sum(qt > cl for _, _, qt, _, cl, _ in rows)
            gap = statistics.mean(100 * (qt - cl) for _, _, qt, _, cl, _ in rows)
            stuck = [L for L, _, qt, _, _, _ in rows if qt <= CHANCE + 0.01]
            out.append(f"**Block sweep**: QT {recipe} is more accurate than the classical CNN of its budget at "
                       f"{wins} of {len(rows)} block counts; on average it is {abs(gap):.1f} points "
                       f"{'above' if gap >= 0 else 'below'} it."
                       + (f" At L = {', '.join(map(str, stuck))} it ended at chance ({percent(CHANCE)})."
                          if stuck else ""))
    for grid, title in (("seeds", "Seeds"), ("long", "Longer training"), ("protocol", "Chosen on validation")):
        summary = seeds_summary(runs, dataset, grid)
        budget = summary.get("classical CNN, QT's budget")
        qts = {m: s for m, s in summary.items() if m.startswith("QT ")}
        if qts and budget:
            best = max(qts, key=lambda m: qts[m]["mean"])
            q = qts[best]
            gap = 100 * (q["mean"] - budget["mean"])
            paired = dict(zip(budget["seeds"], budget["accs"], strict=True))
            diffs = [100 * (a - paired[seed]) for seed, a in zip(q["seeds"], q["accs"], strict=True) if seed in paired]
            reach = percent(q["mean"], q["std"]) if len(q["accs"]) > 1 else percent(q["mean"]) + " (one seed)"
            out.append(f"**{title}**: the best QT recipe ({best}, {q['params']:,} parameters) reaches "
                       f"{reach}; the budget CNN ({budget['params']:,}) "
                       f"{percent(budget['mean'], budget['std'])}, {abs(gap):.2f} points "
                       f"{'below' if gap >= 0 else 'above'} QT, both after {q['epochs']} epochs. Seed by seed, QT "
                       f"is ahead on {sum(d > 0 for d in diffs)} of {len(diffs)} seeds (differences "
                       f"{', '.join(f'{d:+.2f}' for d in diffs)} points).")
    summary = seeds_summary(runs, dataset)
    full, budget = summary.get("classical CNN"), summary.get("classical CNN, QT's budget")
    if full and budget:
        out.append(f"**Classical at QT's budget**: narrowing the CNN from {full['params']:,} to {budget['params']:,} "
                   f"parameters costs {100 * (full['mean'] - budget['mean']):.2f} points ({100 * full['mean']:.2f} "
                   f"against {100 * budget['mean']:.2f} %, {budget['epochs']} epochs, {len(budget['accs'])} seeds).")
    if not (select(runs, dataset)["model"] == "qt").any():
        line = "**QT**: no QT run yet; the numbers above are the classical side of the comparison."
        L = HEADLINE_BLOCKS[dataset]
        pub = published_qt(dataset, L)
        cnns = [s for g in ("seeds", "long") for m, s in seeds_summary(runs, dataset, g).items()
                if m == "classical CNN, QT's budget"]
        if pub and cnns:
            b = max(cnns, key=lambda s: s["mean"])
            gap = 100 * (b["mean"] - pub)
            line += (f" This book's best budget CNN ({percent(b['mean'])}, {b['epochs']} epochs) is {abs(gap):.2f} "
                     f"points {'below' if gap < 0 else 'above'} the published QT figure at L = {L} ({percent(pub)}, "
                     "reference recipe, measured differently); only a QT run with this protocol can tell which "
                     "is ahead.")
        out.append(line)
    shots = shots_rows(runs, dataset)
    exact = [accs for s, accs in shots if s is None]
    sampled = [(s, accs) for s, accs in shots if s is not None]
    if exact and sampled:
        mean = {s: statistics.mean(accs) for s, accs in shots}
        seeds = min(len(accs) for _, accs in shots)
        s, low = sampled[-1][0], sampled[0][0]
        line = (f"**Shots** ({seeds} seed{'s' if seeds > 1 else ''}): with S = {s:,} shots QT reaches "
                f"{percent(mean[s])}, {100 * (mean[None] - mean[s]):.2f} points below exact probabilities; with "
                f"S = {low:,} it reaches {percent(mean[low])}.")
        dips = [(a, b) for (a, _), (b, _) in itertools.pairwise(sampled) if mean[b] < mean[a]]
        if seeds > 1 and not dips:
            line += " The means rise with S at every step."
        if dips:  # a larger S worse on average: say by how much, beside the seeds' spread there
            std = {s: mean_std(accs)[1] for s, accs in sampled}
            line += " " + "; ".join(
                f"S = {b:,} is {100 * (mean[a] - mean[b]):.2f} points below S = {a:,}"
                + (f" (std over seeds {100 * std[a]:.2f} and {100 * std[b]:.2f})" if seeds > 1 else " (one seed)")
                for a, b in dips) + "."
        out.append(line)
    return "\n".join("- " + line for line in out)


GOALS = {"mnist": 0.95, "fashion_mnist": 0.84, "cifar10": 0.65}  # the test accuracy goals
TEST_CHOSEN = "not judged: recipe picked on the test set"


def _verdict(s, target, budget):
    """(met, verdict) of one QT model's seeds summary against an accuracy goal."""
    n = len(s["accs"])
    if n < len(SEEDS):
        return None, f"not judged: {n} of {len(SEEDS)} seeds"
    why = (["below the goal"] if s["mean"] < target else []) + ([f"{s['params']:,} parameters"] if s["params"] > budget
                                                                else [])
    return not why, "missed: " + " and ".join(why) if why else "met"


def goals(runs):
    """[(goal, QT model, its mean test accuracy, met?, verdict)] for each goal and QT model of the seeds, long and
    protocol grids. Where the protocol grid has run, its model (chosen on validation) is the one judged and the
    others, whose recipes were picked on the test set, are shown unjudged; elsewhere (CIFAR-10, whose recipe is
    MNIST's plus weight standardisation, added on its training loss, never its test set) the seeds and long grids'
    models are judged. `met` is None, not judged, below the three
    seeds; a goal without QT runs is one 'not run' row."""
    out = []
    for dataset, target in GOALS.items():
        budget = qt_params(dataset, HEADLINE_BLOCKS[dataset])
        goal = f"{dataset} ≥ {100 * target:.0f} % at ≤ {budget:,} parameters"
        validated = "QT chosen on validation" in seeds_summary(runs, dataset, "protocol")
        rows = []
        for grid in ("protocol", "seeds", "long"):
            for model, s in seeds_summary(runs, dataset, grid).items():
                if not model.startswith("QT "):
                    continue
                met, verdict = _verdict(s, target, budget)
                if validated and grid != "protocol":
                    met, verdict = None, TEST_CHOSEN
                n = len(s["accs"])
                rows.append((goal, f"{model}, {s['epochs']} epochs, {n} seed{'s' if n > 1 else ''}", s["mean"], met,
                             verdict))
        out += rows or [(goal, "no QT run", None, None, "not run")]
    return out


def goals_table(runs):
    """Markdown of `goals`."""
    rows = [(g, m, percent(v), verdict) for g, m, v, _, verdict in goals(runs)]
    return markdown_table(("goal", "model", "mean over seeds", "met?"), rows, left=2)


def against_budget(runs):
    """[(dataset, comparison, QT's mean minus the budget CNN's, seeds QT is ahead on, seeds, met?)]: the goal
    'a QT model above the CNN of its budget on every one of three seeds', per dataset, from the protocol grid
    (both models chosen on validation with six trials each) where it has run, else from each QT recipe of the
    seeds grid against the budget CNN's one setting."""
    out = []
    for dataset in GOALS:
        validated = "QT chosen on validation" in seeds_summary(runs, dataset, "protocol")
        summary = seeds_summary(runs, dataset, "protocol" if validated else "seeds")
        budget = summary.get("classical CNN, QT's budget")
        for model, q in summary.items():
            if not model.startswith("QT ") or budget is None:
                continue
            paired = dict(zip(budget["seeds"], budget["accs"], strict=True))
            diffs = [a - paired[seed] for seed, a in zip(q["seeds"], q["accs"], strict=True) if seed in paired]
            how = ("both chosen on validation, 6 trials each" if validated
                   else "one setting each, not tuned on this dataset")
            out.append((dataset, f"{model} against the budget CNN ({how})", q["mean"] - budget["mean"],
                        sum(d > 0 for d in diffs), len(diffs),
                        None if len(diffs) < len(SEEDS) else all(d > 0 for d in diffs)))
    return out


def against_budget_table(runs):
    """Markdown of `against_budget`."""
    rows = [(d, c, f"{100 * gap:+.2f}", f"{ahead} of {n}", "not judged" if met is None else
             ("met" if met else "missed") + ("" if "chosen on validation" in c else " (settings not tuned)"))
            for d, c, gap, ahead, n, met in against_budget(runs)]
    return markdown_table(("dataset", "comparison", "mean difference (points)", "QT ahead on seeds", "met?"), rows,
                          left=2)


def render(runs):
    """Every table, as one Markdown document."""
    tables = {"tune": ("Tune (validation)", tune_table), "protocol": ("Protocol", seeds_table),
              "seeds": ("Seeds", seeds_table), "long": ("Long", seeds_table), "blocks": ("Blocks", blocks_table),
              "ablation": ("Ablation", ablation_table), "shots": ("Shots", shots_table),
              "control": ("Controls", control_table)}
    out = []
    for dataset in datasets(runs):
        out.append(f"## {dataset}")
        for grid in [g for g in tables if g in grid_names(runs, dataset)]:
            title, table = tables[grid]
            out += [f"### {title}", table(runs, dataset, grid) if table is seeds_table else table(runs, dataset)]
    return "\n\n".join(out) + "\n"


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--runs", type=Path, default=Path("results/runs"),
                   help="folder of <dataset>/<grid>/<run>.json (default: results/runs of the working directory)")
    p.add_argument("runs_dir", nargs="?", type=Path, default=None, help="the same as --runs (older spelling)")
    args = p.parse_args(argv)
    runs = args.runs_dir or args.runs
    if not runs.is_dir():
        p.exit(2, f"error: no runs folder {runs}: pass --runs DIR (the folder holding <dataset>/<grid>/<run>.json)\n")
    print(render(load_runs(runs)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
