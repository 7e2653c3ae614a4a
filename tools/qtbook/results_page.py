"""The book's results page: our glued numbers beside `published.PUBLISHED`, as MyST Markdown.

    python -m qtbook.results_page build/executed/*.ipynb --template book/results.md --out results.md

Each executed notebook's numbers come from `<name>.json` beside it (written by its closing cell when
`qtbook.run_notebooks` runs it). The chapter's dataset, blocks and profile come from its parameters cell
and the parameters papermill injected. Accuracies are fractions, glued and published alike.
"""
import argparse
import ast
import contextlib
import json
from pathlib import Path

from qt_helpers.records import atomic_write

from . import report, verdict
from .notebook import markdown_table, percent
from .published import PUBLISHED, QT_BLOCKS, published_qt, qt_params
from .report import TITLES

MARKER = "<!-- RESULTS"
VERDICT = "<!-- VERDICT"


def chapter(path):
    """{'name', 'params', 'numbers'} of one executed notebook."""
    path = Path(path)
    nb = json.loads(path.read_text(encoding="utf-8"))
    params = {}
    for cell in nb["cells"]:
        if cell["cell_type"] == "code" and "parameters" in cell.get("metadata", {}).get("tags", []):
            for node in ast.parse("".join(cell["source"])).body:
                if isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Name):
                    with contextlib.suppress(ValueError):  # not a literal: left out
                        params[node.targets[0].id] = ast.literal_eval(node.value)
    params.update(nb["metadata"].get("papermill", {}).get("parameters", {}))
    results = path.with_suffix(".json")
    if not results.exists():
        msg = (
            f"{results} is missing: run the notebook with "
                                "`python -m qtbook.run_notebooks`, which writes the numbers it glued there"
        )
        raise FileNotFoundError(msg)
    numbers = json.loads(results.read_text(encoding="utf-8"))
    problems = numbers_problems(numbers)
    if problems:
        msg = (
            f"{results} does not fit {path.name}: {'; '.join(problems)}; rerun the notebook with "
                         "`python -m qtbook.run_notebooks --force`"
        )
        raise ValueError(msg)
    return {"name": path.stem, "params": params, "numbers": numbers}


def numbers_problems(numbers):
    """What makes a chapter's glued numbers unfit beside its notebook: not a dict, or an accuracy that is not a
    finite fraction."""
    if not isinstance(numbers, dict):
        return [f"not a dict of glued numbers ({type(numbers).__name__})"]
    problems = []
    for key, value in numbers.items():
        if key.endswith("_acc") and value is not None and not (
                isinstance(value, (int, float)) and not isinstance(value, bool) and 0 <= value <= 1):
            problems.append(f"{key} is {value!r}, not an accuracy in [0, 1]")
    return problems


def _ours(ch, key):
    """A glued accuracy (a fraction), or None."""
    value = ch["numbers"].get(key)
    return None if isinstance(value, bool) or not isinstance(value, (int, float)) else value


def recorded(ch):
    """True for a chapter's recorded full-scale run (results/notebooks/), False for a CI-scale execution."""
    run = ch["numbers"].get("run")
    return bool(run) and run.get("profile") != "small"


def _scale(ch):
    """The column heading of a chapter's run: profile, data, epochs where glued, hardware."""
    n, run = ch["numbers"], ch["numbers"].get("run") or {}
    parts = [f"`{ch['params'].get('profile', '?')}`"]
    if "n_train" in n:
        parts.append(f"{n['n_train']:,}/{n.get('n_test', 0):,} images")
    epochs = n.get("qt_epochs") or ch["params"].get("qt_epochs") or ch["params"].get("epochs")
    if epochs:
        parts.append(f"{epochs} epochs")
    parts.append("1 seed")
    if run.get("machine"):
        parts.append(run["machine"].split(" (")[0] + (", no GPU" if "no GPU" in run["machine"] else ""))
    return ", ".join(parts)


def dataset_table(dataset, chapters):
    """Published vs ours for one dataset; `chapters` are those whose `dataset` parameter is `dataset`."""
    pub = PUBLISHED[dataset]
    rows = [("classical CNN", pub["classical_params"], pub["classical_acc"], "classical_acc")]
    for L in QT_BLOCKS[dataset]:
        rows.append((f"QT reference, L = {L}", qt_params(dataset, L), published_qt(dataset, L),
                     f"qt_reference_L{L}_acc"))
    chapters = [ch for ch in chapters if any(_ours(ch, k) is not None for *_, k in rows)
                or _ours(ch, "qt_reference_acc") is not None]
    if not chapters:
        return ""

    def ours(ch, key):
        blocks = ch["params"].get("blocks")
        if key == f"qt_reference_L{blocks}_acc" and key not in ch["numbers"]:
            key = "qt_reference_acc"  # a chapter at one block count glues qt_reference_acc
        return _ours(ch, key)

    header = ("model", "trained parameters", "published",
              *(f"{{doc}}`{ch['name']} <../notebooks/{ch['name']}>` ({_scale(ch)})" for ch in chapters))
    table = [(label, f"{n:,}", percent(published), *(percent(ours(ch, key)) for ch in chapters))
             for label, n, published, key in rows]
    extra = sorted({k[:-4] for ch in chapters for k in ch["numbers"]
                    if k.endswith("_acc") and not k.endswith(("_best_acc", "_train_acc", "_val_acc"))
                    and "_Lmax_" not in k and k.startswith(("classical_budget", "qt_improved"))})
    for key in extra:
        params = {ch["numbers"].get(f"{key}_params") for ch in chapters} - {None}
        label = key.replace("classical_budget", "classical CNN, QT's budget").replace("qt_improved", "QT improved")
        label = label.replace("_L", ", L = ")
        table.append((label, ", ".join(f"{p:,}" for p in sorted(params)) or "–", "–",
                      *(percent(_ours(ch, f"{key}_acc")) for ch in chapters)))
    return markdown_table(header, table)


def _sizes(ch):
    n = ch["numbers"]
    parts = [f"profile `{ch['params'].get('profile', '?')}`"]
    if "n_train" in n:
        parts.append(f"{n['n_train']:,} training / {n.get('n_test', 0):,} test images")
    return ", ".join(parts)


def _mean_std_cell(n, key):
    """'mean ± std % (parameters)' of a glued model, '62.54 % (1 seed; parameters)' for a single seed, or '–'."""
    if f"{key}_mean" not in n:
        return "–"
    params = f"{n[f'{key}_params']:,}" if f"{key}_params" in n else ""
    if n.get(f"{key}_seeds", 0) == 1:  # one seed is one seed: no ± 0.00, and said in the cell
        return percent(n[f"{key}_mean"]) + f" (1 seed{'; ' + params if params else ''})"
    return percent(n[f"{key}_mean"], n[f"{key}_std"]) + (f" ({params})" if params else "")


def seeds_table(ch):
    """Mean ± std over seeds (glued by the science chapter) of QT and the classical CNNs: one row per dataset and
    grid (seeds, then long)."""
    n = ch["numbers"]
    models = [(key, label) for label, (_, key) in report.SEEDS_MODELS.items()
              if any(k.endswith(f"_{key}_mean") for k in n)]  # the models some grid has runs of
    rows = []
    for dataset, title in TITLES.items():
        for grid, how in (("", "on the test set"), ("long_", "on the test set"), ("protocol_", "on validation")):
            keys = [f"{dataset}_{grid}{k}" for k, _ in models]
            cells = [_mean_std_cell(n, k) for k in keys]
            if any(c != "–" for c in cells):
                seeds = max(n.get(f"{k}_seeds", 0) for k in keys)
                epochs = max(n.get(f"{k}_epochs", 0) for k in keys) or "?"
                jpeg = " (JPEG copy)" if dataset == "cifar10" else ""
                chosen = "recipes not tuned on it" if dataset == "cifar10" and grid != "protocol_" else f"chosen {how}"
                rows.append((f"**{title}**{jpeg}, {chosen}, {epochs} epochs, {seeds} seeds", *cells))
    if not rows:
        return ""
    short = {"QT chosen on validation": "QT chosen", "classical CNN, QT's budget": "CNN, QT's budget"}
    return markdown_table(("runs", *(short.get(label, label) for _, label in models)), rows)


def cifar10_qt_science(ch):
    """Chapter 7's CIFAR-10 QT runs of the block sweep (one seed each), as table rows, or []."""
    n = ch["numbers"]
    rows = []
    for key in sorted((k for k in n if k.startswith("cifar10_blocks_L") and k.endswith("_qt")),
                      key=lambda k: int(k.split("_L")[1].split("_")[0])):
        L = int(key.split("_L")[1].split("_")[0])
        cnn = n.get(f"cifar10_blocks_L{L}_cnn")
        if n[key] is not None:
            rows.append((L, percent(_ours(ch, key)),
                         "–" if cnn is None else percent(_ours(ch, f"cifar10_blocks_L{L}_cnn"))))
    if not rows:
        return []
    return ["## CIFAR-10 QT in the science chapter", "",
            f"Chapter 7's block sweep ({{doc}}`../notebooks/{ch['name']}`): full data (the JPEG-compressed copy "
            "of CIFAR-10), 20 epochs, one seed, the improved recipe; beside it the classical CNN of the same "
            "budget. Each run's record names its machine, and the chapter's appendix lists them (this project's "
            "2-core CPU, a rented GPU, or both for a run resumed from the GPU's checkpoint).", "",
            markdown_table(("QNN blocks L", "QT improved", "budget CNN"), rows, left=0), ""]


def render(paths):
    """The generated part of the page, for these executed notebooks. Only recorded runs stand beside the
    published numbers; CI-scale executions are listed apart, as checks."""
    everything = [chapter(p) for p in paths]
    chapters = [ch for ch in everything if recorded(ch) or ch["name"] == "07_science"]
    checks = [ch for ch in everything if ch not in chapters]
    out = []
    for ch in chapters:
        table = seeds_table(ch)
        if table:
            out += ["## Headline: mean ± std over seeds", "",
                    f"From {{doc}}`../notebooks/{ch['name']}`'s recorded runs (`results/runs/`): full training and "
                    "test sets; trained parameters in brackets; every model trained with the same protocol. Recipes "
                    "chosen on the test set are not judged against the goals; those chosen on validation were "
                    "picked with six trials per model on a 10 % validation split, and the test set read once. "
                    "A cell with one seed says so. CIFAR-10's numbers come from the JPEG-compressed copy of its "
                    "images. The chapter's appendix names the machine of every run.",
                    "", table, ""]
        out += cifar10_qt_science(ch)
    for dataset in PUBLISHED:
        table = dataset_table(dataset, [ch for ch in chapters if ch["params"].get("dataset") == dataset])
        if table:
            jpeg = " Ours are on the JPEG-compressed copy of CIFAR-10." if dataset == "cifar10" else ""
            out += [f"## {TITLES.get(dataset, dataset)}", "",
                    "Test accuracy after the last epoch of each recorded run (heading: profile, data, epochs, "
                    f"seeds, hardware).{jpeg}", "", table, ""]
    runs = []
    for ch in everything:
        run = ch["numbers"].get("run") or {}
        kind = ("recorded" if recorded(ch) else "reads the recorded runs in `results/runs/`"
                if ch["name"] == "07_science" else "CI-scale check, not a result")
        wall = "–" if "wall_s" not in run else f"{run['wall_s']:.0f} s" if run["wall_s"] < 60 else \
            f"{run['wall_s'] / 60:.0f} min"
        if run.get("resumed_runs"):  # continued from checkpoints: the runs' own time counts, over all sittings
            wall = f"{run['train_s'] / 3600:.1f} h of training in several sessions (the last {wall})"
        runs.append((f"{{doc}}`../notebooks/{ch['name']}`", f"{kind}: {_sizes(ch)}", run.get("machine", "–"), wall,
                     len(ch["numbers"])))
    header = ("chapter", "run", "machine", "wall time", "glued numbers")
    out += ["## The runs", "", markdown_table(header, runs, left=3), ""]
    if checks:
        out += ["Chapters without a recorded run are built from CI's small executions; their numbers check that "
                "the code runs and learns, and are not shown beside published results.", ""]
    for ch in everything:
        rows = [(f"`{key}`", f"{value:.6g}" if isinstance(value, float) else f"{value:,}" if isinstance(value, int)
                 else value) for key, value in ch["numbers"].items() if key != "run"]
        out += [f":::{{dropdown}} All numbers glued by {ch['name']}", "", markdown_table(("name", "value"), rows)]
        out += [":::", ""]
    return "\n".join(out)


def with_verdict(text, out_dir, runs=None):
    """`text` with its `<!-- VERDICT` line replaced by the book's verdict (`verdict.verdict_markdown`: the
    figure, saved in `out_dir`, and the paragraph, from the recorded runs)."""
    if VERDICT not in text:
        return text
    start = text.index(VERDICT)
    end = text.index("\n", start) + 1
    return text[:start] + verdict.verdict_markdown("verdict.png", out_dir, runs) + text[end:]


def write_page(template, out, paths):
    """`template` with everything from its `<!-- RESULTS` line on replaced by `render(paths)` (and its
    `<!-- VERDICT` line by the verdict)."""
    text = with_verdict(Path(template).read_text(encoding="utf-8"), Path(out).parent)
    head = text[:text.index(MARKER)] if MARKER in text else text + "\n"
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    atomic_write(out, head + render(paths) + "\n")
    return out


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("notebooks", nargs="+", type=Path, help="executed notebooks (with <name>.json beside them)")
    p.add_argument("--template", type=Path, default=Path("book/results.md"))
    p.add_argument("--out", type=Path, required=True)
    args = p.parse_args(argv)
    for path in (args.template, *args.notebooks):
        if not path.is_file():
            p.exit(2, f"error: {path} does not exist; run this in the repository's folder, or pass the paths\n")
    write_page(args.template, args.out, args.notebooks)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
