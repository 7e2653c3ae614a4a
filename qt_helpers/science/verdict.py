"""The book's verdict up front: what QT achieved, at how many parameters, against which CNN, chosen how. One
figure and one paragraph, generated from the recorded runs (`results/runs/`), for the intro page (and any page
that opens with the verdict):

    python -m qt_helpers.science.verdict            # print the paragraph
    write_intro("book/intro.md", "build/book-src/book/intro.md")   # what tools/stage_book.py does

The comparison is the validation protocol's (`protocol` grid): QT and the classical CNN cut to QT's budget, each
with its learning rate and schedule chosen on a validation split (the `tune` grid), then three seeds each with
the test set read once. The full CNN's seeds-grid runs stand beside them as the reference.
"""
import argparse
from pathlib import Path

import matplotlib.pyplot as plt
from matplotlib.ticker import FixedLocator, NullFormatter, StrMethodFormatter

from . import report
from ..notebook import percent
from ..plot import model_color

MARKER = "<!-- VERDICT -->"
FIGURE = "verdict.png"
DATASETS = {"mnist": "MNIST", "fashion_mnist": "FashionMNIST"}
MODELS = {"qt": "QT chosen on validation", "budget": "classical CNN, QT's budget", "cnn": "classical CNN"}


def verdict(runs=None):
    """{dataset: numbers} of the validation protocol: for 'qt', 'budget' (chosen on validation) and 'cnn' (the
    full CNN, its recipe fixed) the seeds summary (`report.seeds_summary`), plus the trials per model, the
    validation fraction, the choices (`report.tune_choices`) and QT's mean minus the budget CNN's with the seeds
    QT is ahead on. Datasets whose protocol grid has not run are left out."""
    runs = runs if runs is not None else report.load_runs()
    out = {}
    for dataset in DATASETS:
        protocol = report.seeds_summary(runs, dataset, "protocol") if dataset in runs else {}
        if MODELS["qt"] not in protocol or MODELS["budget"] not in protocol:
            continue
        qt, budget = protocol[MODELS["qt"]], protocol[MODELS["budget"]]
        full = report.seeds_summary(runs, dataset).get(MODELS["cnn"])
        record = next(iter(runs[dataset]["protocol"].values()))
        trials = {}
        for r in runs[dataset]["tune"].values():
            trials[r["model"]] = trials.get(r["model"], 0) + 1
        paired = dict(zip(budget["seeds"], budget["accs"]))
        diffs = [a - paired[s] for s, a in zip(qt["seeds"], qt["accs"]) if s in paired]
        out[dataset] = {"qt": qt, "budget": budget, "cnn": full, "trials": trials,
                        "val_fraction": record["n_val"] / (record["n_val"] + record["n_train"]),
                        "choices": report.tune_choices(runs, dataset), "gap": qt["mean"] - budget["mean"],
                        "ahead": sum(d > 0 for d in diffs), "paired": len(diffs)}
    return out


def paragraph(v):
    """The verdict as one Markdown paragraph (accuracies as mean ± std over seeds; differences in points)."""
    if "mnist" not in v:
        return "No run of the validation protocol is recorded yet (`results/runs/*/protocol/`)."
    m = v["mnist"]
    qt, budget, full = m["qt"], m["budget"], m["cnn"]
    trials = sorted(set(m["trials"].values()))
    lr = {model: choice[2] for model, choice in m["choices"].items()}
    text = (f"**The verdict.** On MNIST, QT trained {qt['params']:,} parameters, "
            f"{100 * qt['params'] / full['params']:.0f} % of the CNN's {full['params']:,} weights, and reached "
            f"{percent(qt['mean'], qt['std'])} test accuracy; the same CNN cut to QT's budget "
            f"({budget['params']:,} parameters, trained directly) reached {percent(budget['mean'], budget['std'])}, "
            f"{_points(m['gap'])}, with QT ahead on {m['ahead']} of {m['paired']} seeds.")
    if "fashion_mnist" in v:
        f = v["fashion_mnist"]
        text += (f" On FashionMNIST: {percent(f['qt']['mean'], f['qt']['std'])} against "
                 f"{percent(f['budget']['mean'], f['budget']['std'])} ({_points(f['gap'])}).")
    text += (f" Both models were chosen the same way: {' and '.join(map(str, trials))} trials each of learning "
             f"rate and schedule, judged on a {100 * m['val_fraction']:.0f} % validation split (QT's choice: lr "
             f"{lr.get('qt', 0):g}, the budget CNN's: lr {lr.get('classical', 0):g}, both the largest tried), "
             f"then {len(qt['accs'])} seeds of {qt['epochs']} epochs each, the test set read once at the end; "
             f"the full CNN ({percent(full['mean'], full['std'])}, {len(full['accs'])} seeds) is shown for "
             "reference. QT does what the original work claims, a good network from few trained parameters, "
             "but on these datasets a classical network of the same size does as well or better.")
    return text


def _points(gap):
    """QT's mean minus the budget CNN's, in points: 'QT 0.79 points below it'."""
    return f"QT {abs(100 * gap):.2f} points {'above' if gap > 0 else 'below'} it"


def plot_verdict(v, path=None):
    """Test accuracy against trained parameters (log axis), one panel per dataset: QT and the budget CNN chosen
    on validation, the full CNN; a dot is the mean over seeds (its value beside it), its bar the seeds' range."""
    labels = {"qt": "QT, chosen on validation", "budget": "CNN cut to QT's budget, chosen on validation",
              "cnn": "full CNN (its recipe fixed)"}
    fig, axes = plt.subplots(1, len(v), figsize=(4.2 * len(v), 3.6), squeeze=False)
    for ax, (dataset, m) in zip(axes.flat, v.items()):
        for key, marker in (("qt", "o"), ("budget", "s"), ("cnn", "*")):
            s = m[key]
            if s is None:
                continue
            accs = [100 * a for a in s["accs"]]
            mean = 100 * s["mean"]
            ax.errorbar([s["params"]], [mean], yerr=[[mean - min(accs)], [max(accs) - mean]], fmt=marker,
                        ms=10 if marker == "*" else 7, capsize=3, color=model_color(MODELS[key]), label=labels[key])
            ax.annotate(f"{mean:.2f} %", (s["params"], mean), xytext=(8, -3), textcoords="offset points",
                        fontsize=8)
        ax.set_xscale("log")
        ax.xaxis.set_major_locator(FixedLocator([1000, 2000, 5000, 10000]))
        ax.xaxis.set_major_formatter(StrMethodFormatter("{x:,.0f}"))
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.set_xlim(900, 14000)
        lo, hi = ax.get_ylim()
        ax.set_ylim(lo - 0.1 * (hi - lo), hi + 0.1 * (hi - lo))
        ax.set_xlabel("trained parameters (log scale)")
        ax.set_ylabel("test accuracy (%)")
        ax.set_title(f"{DATASETS[dataset]}: {len(m['qt']['accs'])} seeds, {m['qt']['epochs']} epochs", fontsize=10)
        ax.grid(alpha=0.3)
    handles, names = axes.flat[0].get_legend_handles_labels()
    fig.legend(handles, names, loc="lower center", ncol=3, fontsize=8, frameon=False)
    fig.tight_layout(rect=(0, 0.08, 1, 1))
    if path is not None:
        fig.savefig(path, dpi=150)
        plt.close(fig)
    return fig


def write_intro(template, out, runs=None):
    """`template` (book/intro.md) with its MARKER line replaced by the verdict's figure and paragraph; the figure
    is written beside `out`."""
    text = Path(template).read_text(encoding="utf-8")
    if MARKER not in text:
        raise ValueError(f"{template}: no {MARKER} line where the verdict belongs")
    v = verdict(runs)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    figure = ""
    if v:
        plot_verdict(v, out.parent / FIGURE)
        figure = (f"```{{figure}} {FIGURE}\n:alt: test accuracy against trained parameters for QT, the CNN at QT's "
                  "budget and the full CNN\n:width: 100%\n\nMean test accuracy over seeds (the bar spans the "
                  "seeds) against trained parameters, from the recorded runs in `results/runs/`.\n```\n\n")
    out.write_text(text.replace(MARKER, figure + paragraph(v)), encoding="utf-8")
    return out


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("runs", nargs="?", default=None, help="folder of <dataset>/<grid>/<run>.json")
    args = p.parse_args(argv)
    print(paragraph(verdict(report.load_runs(args.runs))))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
