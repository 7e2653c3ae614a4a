"""The book's verdict: what QT reached, at how many parameters, against which CNN, chosen how (chapter 7).

One paragraph and one figure, built from the recorded runs (`results/runs/`) and nothing typed by hand; the
results page opens with them (`tools/stage_book.py`), and the intro page can too:

    from qtbook import verdict
    text = verdict.verdict_markdown(figure="verdict.png", out_dir=Path("book"))
"""
from pathlib import Path

import matplotlib.pyplot as plt
from matplotlib.ticker import LogLocator, NullFormatter, StrMethodFormatter

from qt_helpers.plot import model_color

from . import report
from .report import TITLES

BUDGET = "classical CNN, QT's budget"


def comparisons(runs):
    """Per dataset, the headline comparison: {'qt', 'budget', 'full' (seeds summaries), 'qt_model', 'how'}.

    QT and the CNN of its budget come from the protocol grid (each chosen on a validation split with six trials)
    where it has run, else from the seeds grid (QT's improved recipe, the budget CNN's one setting); the full CNN
    from the seeds grid (the book's classical recipe). Datasets without both QT and a budget CNN are left out."""
    out = {}
    for d in TITLES:
        seeds = report.seeds_summary(runs, d)
        protocol = report.seeds_summary(runs, d, "protocol")
        validated = "QT chosen on validation" in protocol and BUDGET in protocol
        source = protocol if validated else seeds
        qt_model = "QT chosen on validation" if validated else "QT improved"
        if qt_model not in source or BUDGET not in source:
            continue
        how = ("both chosen on a validation split, six trials each" if validated else
               "neither tuned on this dataset")
        out[d] = {"qt": source[qt_model], "budget": source[BUDGET], "full": seeds.get("classical CNN"),
                  "qt_model": qt_model, "how": how,  # the budget CNN chosen on validation while QT's trials run:
                  "tuned_budget": None if validated else protocol.get(BUDGET)}
    return out


def _acc(s):
    """'97.19 ± 0.13 %' over three seeds; '62.54 % (one seed)' for one."""
    n = len(s["accs"])
    if n == 1:
        return f"{100 * s['mean']:.2f} % (one seed)"
    return f"{100 * s['mean']:.2f} ± {100 * s['std']:.2f} %"


def _points(a, b):
    """'0.79 points below' / '5.38 points above': a's mean against b's, in points."""
    gap = 100 * (a["mean"] - b["mean"])
    return f"{abs(gap):.2f} points {'above' if gap >= 0 else 'below'}"


def verdict_text(runs=None, controls=True):
    """The verdict paragraph (Markdown), every number read from the records (`controls`: with the control
    experiment's sentence; chapter 7 has a section of its own for it)."""
    runs = report.load_runs() if runs is None else runs
    sentences = []
    for d, c in comparisons(runs).items():
        qt, budget, full = c["qt"], c["budget"], c["full"]
        n = len(qt["accs"])
        s = (f"On **{TITLES[d]}**{' (a JPEG-compressed copy)' if d == 'cifar10' else ''}, QT with "
             f"{qt['params']:,} trained parameters reached {_acc(qt)} ({n} seed{'s' * (n > 1)}, {qt['epochs']} "
             f"epochs, full test set), {_points(qt, budget)} a CNN narrowed to {budget['params']:,} parameters "
             f"({_acc(budget)}; {c['how']})")
        if full:
            s += (f" and {_points(qt, full)} the full {full['params']:,}-parameter CNN ({_acc(full)}), "
                  f"{full['params'] / qt['params']:.0f} times QT's parameters")
        tuned = c["tuned_budget"]
        if tuned:
            pick = report.tune_choices(runs, d).get("qt")
            waiting = (f"QT's own choice on validation (`{pick[0]}`, {100 * pick[1]:.2f} %) is still training its "
                       "seeds" if pick else "QT's own trials on validation are still running")
            s += (f". Chosen on a validation split, the CNN of its budget ({tuned['params']:,} parameters, trained "
                  f"on 90 % of the images) reaches {_acc(tuned)}; QT is {_points(qt, tuned)} it, but {waiting}: "
                  f"no verdict on {TITLES[d]} yet")
        sentences.append(s + ".")
    if not sentences:
        return "*No recorded runs yet*: `python -m qtbook.experiments seeds --dataset mnist` makes them."
    return " ".join(sentences) + (" QT's claim is a compression of the trained parameters, not an accuracy "
                                  "gain over a CNN of its own size; the figure shows both comparisons."
                                  + (control_sentence(runs) if controls else ""))


def control_sentence(runs):
    """The control grid in one sentence (chapter 7, "Does the circuit matter?"), or '' without its runs."""
    parts = []
    for d in ("mnist", "fashion_mnist"):
        s = report.control_summary(runs, d)
        if "QT chosen" in s and "classical generator" in s:
            g = s["classical generator"]
            parts.append(f"{TITLES[d]} {_acc(g)} against QT's {_acc(s['QT chosen'])}, "
                         f"{min(-x for x in g['diffs']):.2f} to {max(-x for x in g['diffs']):.2f} points behind "
                         "seed by seed")
    if not parts:
        return ""
    cifar10 = report.control_progress(runs, "cifar10")
    return (" Does the circuit matter? A classical generator of the same size in its place, chosen the same way, "
            "reached " + "; ".join(parts) + " (chapter 7)." + (" " + cifar10 if cifar10 else ""))


def plot_verdict(runs=None):
    """One panel per dataset: test accuracy (mean, bars spanning the seeds' min to max) against trained
    parameters (log axis) of QT, the CNN of its budget and the full CNN."""
    runs = report.load_runs() if runs is None else runs
    found = comparisons(runs)
    fig, axes = plt.subplots(1, max(len(found), 1), figsize=(11, 3.4), squeeze=False)
    for ax, (d, c) in zip(axes[0], found.items(), strict=False):  # one empty panel when nothing is found
        for key, label, marker in (("qt", c["qt_model"], "o"), ("budget", BUDGET, "s"), ("full", "classical CNN", "*")):
            s = c[key]
            if s is None:
                continue
            accs = [100 * a for a in s["accs"]]
            mean = 100 * s["mean"]
            n = len(accs)
            ax.errorbar([s["params"]], [mean], yerr=[[mean - min(accs)], [max(accs) - mean]], fmt=marker, ms=9,
                        capsize=4, color=model_color(label),
                        label=f"{label} ({n} seed{'s' * (n > 1)})")
            ax.annotate(f"{mean:.2f}", (s["params"], mean), textcoords="offset points", xytext=(8, -3), fontsize=8)
        ax.set_xscale("log")
        wide = c["full"] and c["full"]["params"] / c["qt"]["params"] > 8
        ax.xaxis.set_major_locator(LogLocator(subs=(1,) if wide else (1, 2, 5)))
        ax.xaxis.set_major_formatter(StrMethodFormatter("{x:,.0f}"))
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.margins(x=0.25, y=0.3)
        ax.set_xlabel("trained parameters (log scale)")
        ax.set_ylabel("test accuracy (%), zoomed")
        ax.set_title(TITLES[d] + (" (JPEG copy)" if d == "cifar10" else ""))
        ax.grid(alpha=0.3)
    handles = {}
    for ax in axes[0]:
        for h, label in zip(*ax.get_legend_handles_labels(), strict=True):
            handles.setdefault(label, h)
    fig.legend(handles.values(), handles.keys(), loc="lower center", ncol=len(handles), fontsize=8, frameon=False)
    fig.tight_layout(rect=(0, 0.1, 1, 1))
    return fig


def verdict_markdown(figure="verdict.png", out_dir=Path(), runs=None):
    """The verdict as a page opens with it: the figure (saved as `out_dir / figure`) and the paragraph."""
    runs = report.load_runs() if runs is None else runs
    fig = plot_verdict(runs)
    Path(out_dir).mkdir(parents=True, exist_ok=True)
    fig.savefig(Path(out_dir) / figure, dpi=110, bbox_inches="tight")
    plt.close(fig)
    alt = "Test accuracy against trained parameters: QT, the CNN of its budget and the full CNN, per dataset"
    return (f"```{{figure}} {figure}\n:alt: {alt}\n:width: 100%\n\nMean test accuracy over seeds (the bars span "
            "the lowest and highest seed); the accuracy axes are zoomed to the points, they do not start at 0.\n"
            f"```\n\n**The verdict.** {verdict_text(runs)}\n")
