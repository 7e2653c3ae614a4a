"""Book tooling for chapter 7 and its appendix page: the numbers the chapter glues, the CIFAR-10 cost notes, and
the appendix's tables, all read from the recorded runs (`results/runs/`) and benchmarks (`results/bench/`).

    python -m qtbook.science_page --out science_appendix.md   # what tools/stage_book.py writes
"""
import argparse
import json
from pathlib import Path

from qt_helpers.records import atomic_write

from . import experiments, report
from .notebook import markdown_table

RESULTS = Path(__file__).resolve().parents[2] / "results"
CHAPTERS_50 = {"mnist": "02_mnist", "fashion_mnist": "03_fashion_mnist"}  # the chapters' 50-epoch recorded runs


def load(runs_dir, datasets, grids, run_grids=False, jobs=1):
    """Chapter 7's runs: check its parameters, make the missing runs first if `run_grids`, read every record
    under `runs_dir` and check that each was tested on the full test set. Returns (runs, the datasets found)."""
    for name, values, valid in (("datasets", datasets, ("mnist", "fashion_mnist", "cifar10")),
                                ("grids", grids, experiments.GRIDS)):
        if not set(values) <= set(valid):
            msg = f"parameter {name}: {sorted(set(values) - set(valid))} not among {', '.join(valid)}"
            raise ValueError(msg)
    if run_grids:
        cmds = [c for g in grids for d in datasets for c in experiments.commands(g, d, runs_dir)]
        experiments.run_commands(cmds, runs_dir, jobs)
    runs = report.load_runs(runs_dir)
    partial = runs[runs["record"].map(lambda r: r["n_test"]) != 10000]
    assert partial.empty, f"not tested on the full test set: {', '.join(map(str, partial['path']))}"
    return runs, [d for d in datasets if d in report.datasets(runs)]


def seeds_numbers(runs, dataset, grid="seeds"):
    """{glue key: value} of a seeds-like grid's summary: mean, std, params, seeds and epochs of each model."""
    prefix = dataset if grid == "seeds" else f"{dataset}_{grid}"
    out = {}
    for model, s in report.seeds_summary(runs, dataset, grid).items():
        key = report.SEEDS_MODELS[model][1]
        for stat in ("mean", "std", "params", "epochs"):
            out[f"{prefix}_{key}_{stat}"] = s[stat]
        out[f"{prefix}_{key}_seeds"] = len(s["accs"])
    return out


def unfinished(bench=RESULTS / "bench"):
    """{name: record} of the CIFAR-10 runs a GPU's time limit stopped (`gpu/cifar10-unfinished.json`), or {}."""
    path = Path(bench) / "gpu" / "cifar10-unfinished.json"
    return json.loads(path.read_text())["runs"] if path.exists() else {}


def cifar10_costs(runs, bench=RESULTS / "bench"):
    """(Markdown bullets, {glue key: value}): one CIFAR-10 QT step and run at L = 95 on this CPU and on the GPU."""
    bench, lines, numbers = Path(bench), [], {}
    cpu_file, gpu_file = bench / "cifar10-95-cpu.json", bench / "gpu" / "step-table.json"
    epochs = experiments.CIFAR10_EPOCHS["seeds"]
    if cpu_file.exists():  # python benchmarks/bench_step.py --json ...
        step = next(r for r in json.loads(cpu_file.read_text())["rows"] if r["config"] == "cifar10-95")
        epoch_min = step["step_ms"] / 1000 * 50 / 60  # 50,000 images at batch 1,000
        numbers["cifar10_qt_step_cpu_s"] = step["step_ms"] / 1000
        numbers["cifar10_qt_run_cpu_hours"] = epoch_min * epochs / 60
        lines.append(f"One QT step at L = 95, batch 1,000, on {step['device_name']}: "
                     f"**{step['step_ms'] / 1000:.1f} s**, so {epoch_min:.0f} minutes an epoch and "
                     f"{epoch_min * epochs / 60:.1f} hours for one {epochs}-epoch run.")
    if gpu_file.exists():
        step = next(r for r in json.loads(gpu_file.read_text())["rows"]
                    if (r["config"], r["backend"], r["device"]) == ("cifar10-95", "native", "cuda"))
        qt95 = [r for name, r in report.records(runs, "cifar10", "seeds").items()  # on the GPU from start to end
                if name.startswith("qt-") and r["device"] == "cuda" and "resumed_after_epoch" not in r]
        minutes = sum(r["train_seconds"] for r in qt95) / len(qt95) / 60 if qt95 else float("nan")
        numbers["cifar10_qt_step_gpu_ms"] = step["step_ms"]
        numbers["cifar10_qt_run_gpu_min"] = minutes
        lines.append(f"The same step on the {step['device_name']}: **{step['step_ms']:.0f} ms** alone on the GPU. "
                     f"The seeds grid's QT runs shared it four at a time and took {minutes:.1f} minutes of "
                     f"training each ({len(qt95)} runs, {epochs} epochs).")
    L19 = report.records(runs, "cifar10", "blocks").get("qt-L19")
    if L19:
        numbers["cifar10_L19_cpu_hours"] = L19["train_seconds"] / 3600
    for name, u in unfinished(bench).items():  # where each stood when the GPU's time ended
        key = name.split("/")[-1].replace("-", "_")
        numbers[f"cifar10_unfinished_{key}_acc"] = u["history"]["test_acc"][-1]
        numbers[f"cifar10_unfinished_{key}_epochs"] = len(u["history"]["epoch"])
    return "\n".join(f"- {line}" for line in lines), numbers


def numbers(runs, bench=RESULTS / "bench"):
    """Every number chapter 7 glues, {key: value}: the seeds, long and protocol summaries, the tune trials, the
    block sweep, the ablation and shots rows, the goals and QT-against-budget comparisons, CIFAR-10's costs."""
    out = {}
    for d in report.datasets(runs):
        for grid in ("seeds", "long", "protocol"):
            out.update(seeds_numbers(runs, d, grid))
        for trial, r in report.records(runs, d, "tune").items():
            out[f"{d}_tune_{trial.replace('-', '_')}"] = r["val_accuracy"]
        if "blocks" in report.grid_names(runs, d):
            for recipe in experiments.BLOCKS_RECIPES:
                key = report.SEEDS_MODELS[f"QT {recipe}"][1]
                for L, _, qt, _, _, _ in report.blocks_rows(runs, d, recipe):
                    if qt is not None:
                        out[f"{d}_blocks_L{L}_{key}"] = qt
            for L, _, _, _, cl, _ in report.blocks_rows(runs, d):
                if cl is not None:
                    out[f"{d}_blocks_L{L}_cnn"] = cl
        for run, rec in report.records(runs, d, "ablation").items():
            out[f"{d}_ablation_{run.replace('-', '_')}"] = rec["test_accuracy"]
        if "shots" in report.grid_names(runs, d):
            for s, accs in report.shots_rows(runs, d):
                out[f"{d}_shots_{s or 'exact'}"] = sum(accs) / len(accs)
    for d in report.GOALS:
        out[f"goal_{d}_met"] = any(ok for g, _, _, ok, _ in report.goals(runs) if g.startswith(d + " "))
    for d, _, gap, ahead, _, _ in report.against_budget(runs):  # the first comparison: the one the text reads
        out.setdefault(f"beats_{d}_gap", 100 * gap)
        out.setdefault(f"beats_{d}_ahead", ahead)
    out.update(cifar10_costs(runs, bench)[1])
    for d, chapter in CHAPTERS_50.items():  # chapters 2 and 3's 50-epoch runs of the same model
        path = RESULTS / "notebooks" / f"{chapter}.json"
        if path.exists():
            out[f"{d}_qt_improved_50_epochs"] = json.loads(path.read_text())["qt_improved_acc"]
    return out


def plot_panels(runs, datasets, grid, plot):
    """One panel per dataset that has `grid`, side by side: `plot(runs, dataset, ax)` (report.plot_curves for
    the three-seed curves, report.plot_blocks for the block sweep)."""
    import matplotlib.pyplot as plt

    shown = [d for d in datasets if grid in report.grid_names(runs, d)]
    fig, axes = plt.subplots(1, len(shown), figsize=(13, 3.8), squeeze=False)
    for ax, d in zip(axes[0], shown, strict=True):
        plot(runs, d, ax)
    fig.tight_layout()
    return fig


def seeds_overview(runs, grid="seeds"):
    """Markdown: one row per model, one column per dataset: mean ± std over seeds (trained parameters); a cell of
    fewer than three seeds says how many, and shows no ± (the per-seed table is in the appendix)."""
    names = {"mnist": "MNIST", "fashion_mnist": "FashionMNIST", "cifar10": "CIFAR-10 (JPEG copy)"}
    found = {d: report.seeds_summary(runs, d, grid) for d in names if d in report.datasets(runs)}
    rows = []
    for model in report.SEEDS_MODELS:
        cells = []
        for summary in found.values():
            s = summary.get(model)
            if s is None:
                cells.append("–")
            elif len(s["accs"]) < len(experiments.SEEDS):
                n = len(s["accs"])
                cells.append(f"{100 * s['mean']:.2f} % ({n} seed{'s' * (n > 1)} only; {s['params']:,})")
            else:
                cells.append(f"{100 * s['mean']:.2f} ± {100 * s['std']:.2f} % ({s['params']:,})")
        if any(c != "–" for c in cells):
            rows.append((model, *cells))
    return markdown_table(("model", *(names[d] for d in found)), rows)


def goals_overview(runs):
    """Markdown: per goal, the model judged against it (or the reason none is), its mean and the verdict; the
    models shown unjudged (recipes picked on the test set) are in the appendix's table."""
    rows = [(g, m, "–" if v is None else f"{100 * v:.2f} %", verdict) for g, m, v, _, verdict in report.goals(runs)
            if verdict != report.TEST_CHOSEN]
    return markdown_table(("goal", "model", "mean over seeds", "met?"), rows, left=2)


def against_budget_overview(runs):
    """Markdown: `report.against_budget` in short rows: QT's mean minus the budget CNN's, in points."""
    rows = [(d, c.split(" against ")[0], "validation, 6 trials each" if "validation" in c else "not tuned",
             f"{100 * gap:+.2f}", f"{ahead} of {n}", "not judged" if met is None else "met" if met else "missed")
            for d, c, gap, ahead, n, met in report.against_budget(runs)]
    return markdown_table(("dataset", "QT", "chosen on", "QT − budget CNN (points)", "QT ahead on seeds", "met?"),
                          rows, left=3)


def long_chapters_table(runs):
    """Markdown: QT improved in the seeds grid beside the same model in chapters 2 and 3's 50-epoch runs."""
    rows = []
    for d, chapter in CHAPTERS_50.items():
        path = RESULTS / "notebooks" / f"{chapter}.json"
        s = report.seeds_summary(runs, d).get("QT improved")
        if path.exists() and s:
            run = json.loads(path.read_text())
            acc, epochs = run["qt_improved_acc"], run.get("qt_epochs", "?")
            rows.append((d, f"{100 * s['mean']:.2f} % ({s['epochs']} epochs, {len(s['accs'])} seeds)",
                         f"{100 * acc:.2f} % ({epochs} epochs, seed 42)", f"{100 * (acc - s['mean']):+.2f}",
                         f"{100 * report.GOALS[d]:.0f} %"))
    return markdown_table(("dataset", "QT improved, chapter 7", "chapters 2 and 3", "change (points)", "goal"),
                          rows) if rows else ""


REPRODUCE = """\
```bash
python -m qtbook.experiments seeds shots ablation --dataset mnist
python -m qtbook.experiments seeds blocks ablation long --dataset fashion_mnist
python -m qtbook.experiments blocks --dataset mnist
python -m qtbook.experiments shots --dataset fashion_mnist
# the validation protocol, 16 runs at a time:
python -m qtbook.experiments tune protocol --dataset mnist fashion_mnist --jobs 16
# CIFAR-10's classical runs (a CPU), then its QT runs (a GPU):
python -m qtbook.experiments seeds blocks long --dataset cifar10 --runs 'cnn*'
python -m qtbook.experiments seeds blocks long --dataset cifar10
make gpu GPU_ARGS="--stages 4"   # as many of them as a short GPU session allows (tools/gpu_run.py)
# print a grid's train commands without running them:
python -m qtbook.experiments seeds blocks --dataset mnist --dry-run
```"""


CONTROL_KEYS = {"QT chosen": "qt", "classical generator": "generator", "low-rank CNN": "lowrank",
                "frozen random circuit": "frozen", "mapping model alone": "mapping"}


def control_numbers(runs):
    """The numbers chapter 7's "Does the circuit matter?" cites, by glue key, from the control experiment's runs."""
    out, behind, edges = {}, [], []
    for d in ("mnist", "fashion_mnist"):
        s = report.control_summary(runs, d)
        if "QT chosen" not in s:
            continue
        for label, key in CONTROL_KEYS.items():
            out[f"control_{d}_{key}_mean"] = s[label]["mean"]
            out[f"control_{d}_{key}_params"] = s[label]["params"]
        gaps = s["classical generator"]["diffs"]
        out.update({f"control_{d}_generator_gap_min": -max(gaps), f"control_{d}_generator_gap_max": -min(gaps),
                    f"control_{d}_generator_lr": s["classical generator"]["lr"]})
        behind += [d for label, v in s.items()
                   if label != "QT chosen" and (len(v["diffs"]) < 3 or max(v["diffs"]) >= 0)]
        for label, v in s.items():  # a learning rate at the edge of those tried: a wider range might do better
            if label != "QT chosen" and v["lr"] in (min(v["tried"]), max(v["tried"])):
                side = "largest" if v["lr"] == max(v["tried"]) else "smallest"
                edges.append(f"the {label}'s learning rate on {report.TITLES[d]} ({v['lr']:g}) is the {side} it tried")
    out["control_verdict"] = (f"A control matches or beats QT on at least one seed ({', '.join(sorted(set(behind)))})"
                              if behind else "QT is ahead of every control on every seed, on MNIST and FashionMNIST")
    out["control_cifar10"] = report.control_progress(runs, "cifar10") or "CIFAR-10's controls have not run yet."
    out["control_tuning"] = ("; ".join(edges) if edges else
                             "every control's learning rate is inside the range it tried, so the controls were tuned "
                             "at least as finely as QT")
    return out


def appendix_markdown(runs=None, bench=RESULTS / "bench"):
    """The appendix page of chapter 7: every table the chapter leaves out, per dataset, then the compute."""
    runs = report.load_runs() if runs is None else runs
    names = {"mnist": "MNIST", "fashion_mnist": "FashionMNIST", "cifar10": "CIFAR-10 (JPEG-compressed copy)"}
    out = ["# Appendix: every table of chapter 7", "",
           "The tables [chapter 7](../notebooks/07_science.ipynb) summarises, generated from the recorded runs in "
           "`results/runs/` when the book is built (`qtbook.science_page`). Each run's file holds its "
           "command, machine, date and per-epoch history. Accuracies are on the full test sets unless a table says "
           "validation; differences are in points.", ""]
    for d in [d for d in names if d in report.datasets(runs)]:
        grids = report.grid_names(runs, d)
        out += [f"## {names[d]}", ""]
        if "tune" in grids:
            out += ["### Trials on the validation split (`tune`)", "",
                    "Validation accuracy after the last epoch; the test set unread. The choices in bold.", "",
                    report.tune_table(runs, d), ""]
        for grid, title in (("protocol", "The choices, three seeds, tested once (`protocol`)"),
                            ("seeds", "Three seeds (`seeds`)"), ("long", "Twice as long (`long`)")):
            if grid in grids:
                out += [f"### {title}", "", report.seeds_table(runs, d, grid), ""]
        if "blocks" in grids:
            epochs = report.select(runs, d, "blocks")["epochs"].iloc[0]
            out += ["### Block sweep (`blocks`)", "", f"{epochs} epochs per run, one seed (42).", "",
                    report.blocks_table(runs, d), ""]
        if "ablation" in grids:
            r = report.records(runs, d, "ablation")["reference"]
            out += ["### Ablation (`ablation`)", "", f"{r['epochs']} epochs per row, seed {r['seed']}; the "
                    "`options` column is what the `train` command was given.", "", report.ablation_table(runs, d), ""]
        if "control" in grids:
            out += ["### Controls at equal budget (`control`)", "", "Each variant's learning rate chosen on the "
                    "validation split from three, and one more half a decade past the best while it was the largest "
                    "or smallest tried; then three seeds tested once. QT's runs are the protocol's. "
                    "The last column is the variant's accuracy minus QT's, seed by seed.", ""]
            if report.control_summary(runs, d):
                out += [report.control_table(runs, d), ""]
            out += ["Every control's trials on the validation split, the choices in bold:", "",
                    report.control_trials_table(runs, d), ""]
        if "shots" in grids:
            epochs = report.records(runs, d, "shots")["exact"]["epochs"]
            out += ["### Finite shots (`shots`)", "", f"{epochs} epochs per run, mean ± std over seeds.", "",
                    report.shots_table(runs, d), ""]
        out += ["### What the numbers say", "", report.findings(runs, d), ""]
    out += ["## The second goal: QT against the CNN of its budget", "", "QT more accurate than the CNN of its own "
            "budget on each of three seeds, on at least one dataset (chapter 7 states the outcome).", "",
            against_budget_overview(runs), ""]
    table = long_chapters_table(runs)
    if table:
        out += ["## Ten epochs against fifty", "", "Chapters 2 and 3 trained the improved QT model for 50 epochs with "
                "one seed (the cosine schedule, as here); the last column is what the longer training changed.", "",
                table, ""]
    costs, _ = cifar10_costs(runs, bench)
    stopped = {n: u for n, u in unfinished(bench).items()
               if n.split("/")[-1] not in report.records(runs, "cifar10", n.split("/")[1])}
    if costs or stopped:
        out += ["## CIFAR-10's cost", "", costs, ""]
    if stopped:
        rows = [(n, f"{len(u['history']['epoch'])} of {u['identity']['num_epochs']}",
                 ", ".join(f"{100 * a:.1f}" for a in u["history"]["test_acc"])) for n, u in stopped.items()]
        out += ["Runs stopped when the GPU's time ran out, not resumed since (`results/bench/gpu/"
                "cifar10-unfinished.json`), counted nowhere else:", "",
                markdown_table(("run", "epochs done", "test accuracy after each epoch (%)"), rows), ""]
    out += ["## The goals, every model", "", "Models whose recipe was picked on the test set are listed, not "
            "judged.", "", report.goals_table(runs), ""]
    out += ["## The compute these results took", "",
            "Training time of every run (loading and testing not counted); a run shared by two grids is counted "
            "once. AMD EPYC is this book's 2-core machine; Intel(R) Xeon(R) Processor is the 16-core CPU beside "
            "the rented H200 GPU. A run resumed from a checkpoint names both machines.", "",
            report.compute_table(runs), "", "## Reproduce", "",
            "Each grid is one command; each of its runs is one `python -m qt_helpers train` command, recorded in its "
            "JSON file. Finished runs are skipped, so an interrupted grid continues where it stopped. On a GPU, add "
            "`--epochs 50` for the published length.", "", REPRODUCE, ""]
    return "\n".join(out)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--runs", type=Path, default=None, help="folder of <dataset>/<grid>/<run>.json")
    p.add_argument("--out", type=Path, required=True)
    args = p.parse_args(argv)
    atomic_write(args.out, appendix_markdown(report.load_runs(args.runs)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
