"""Execute the book's notebooks with papermill: `python -m qtbook.run_notebooks --out build/executed`.

Each notebook runs once per output folder: `<out>/<name>.ipynb` (executed) and `<out>/<name>.json` (the
numbers it glued, plus `run`: profile, machine, commit, date, wall time and, with checkpoints, the runs'
training time over all sittings) are rewritten only when the
source notebook is newer. The `small` profile is what CI runs on a CPU; `--profile cpu` is full data sized
for a 2-core CPU, `--profile paper` the published settings (a GPU). A recorded run:

    OMP_NUM_THREADS=1 python -m qtbook.run_notebooks 05_cifar10_pennylane --profile cpu \
        --out results/notebooks --checkpoint-dir results/checkpoints

With `--checkpoint-dir`, every training run of a chapter checkpoints each epoch under
`<dir>/<name>/` and a rerun resumes there, so an interrupted recorded run continues where it stopped.
"""
import argparse
import json
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

from qt_helpers.records import atomic_write, provenance, write_json

NOTEBOOKS = Path(__file__).resolve().parents[2] / "notebooks"
DEPENDS = {"07_science": NOTEBOOKS.parent / "results" / "runs"}  # data a chapter reads besides its source


def up_to_date(source, out):
    """True when both outputs of `source` exist and are newer than it and than the data it reads."""
    inputs = [source, *sorted(DEPENDS[source.stem].glob("**/*.json") if source.stem in DEPENDS else [])]
    newest = max(p.stat().st_mtime for p in inputs)
    outs = [out / f"{source.stem}.ipynb", out / f"{source.stem}.json"]
    return all(p.exists() and p.stat().st_mtime >= newest for p in outs)


def terminal_text(text):
    """Stream text as a terminal shows it: a carriage return rewrites its line (tqdm's progress bars)."""
    lines = []
    for line in text.split("\n"):
        parts = [part for part in line.split("\r") if part]
        lines.append(parts[-1].rstrip() if parts else "")
    return "\n".join(lines)


def compact_streams(nb):
    """A notebook's stream outputs as a terminal shows them: consecutive streams merged, a progress bar at its
    last state, a cleared one dropped. Only how outputs show changes, never what they are."""
    for cell in nb["cells"]:
        outputs = []
        for output in cell.get("outputs", []):
            out = output
            if out["output_type"] == "stream":
                out = {**out, "text": "".join(out["text"]) if isinstance(out["text"], list) else out["text"]}
                if outputs and outputs[-1]["output_type"] == "stream" and outputs[-1]["name"] == out["name"]:
                    outputs[-1]["text"] += out["text"]
                    continue
            outputs.append(out)
        for out in outputs:
            if out["output_type"] == "stream":
                out["text"] = terminal_text(out["text"])
        if "outputs" in cell:
            cell["outputs"] = [o for o in outputs if o["output_type"] != "stream" or o["text"].strip()]
    return nb


def commit():
    """The repository's commit, with '+changes' when the code in the working tree differs from it."""
    def git(*args):
        return subprocess.run(["git", "-C", str(NOTEBOOKS.parent), *args], capture_output=True, check=False,
                              text=True).stdout.strip()

    head = git("rev-parse", "--short", "HEAD") or "unknown"  # changes to recorded results do not count
    code = ("qt_helpers", "notebooks", "tools", "benchmarks", "pyproject.toml")
    return head + ("+changes" if git("status", "--porcelain", "--untracked-files=no", "--", *code) else "")


def machine():
    """This machine as a chapter's header states it: the GPU, or the CPU with its cores and threads
    (`qt_helpers.records.provenance`, the one description of a machine)."""
    import torch

    p = provenance("cuda" if torch.cuda.is_available() else "cpu")
    return p["device_name"] if p["device"] == "cuda" else f"{p['device_name']}, {p['cpu_cores']} cores, no GPU"


def training_seconds(folder):
    """Seconds of training in the checkpoints under `folder`: every epoch of every run, whichever sitting."""
    import torch

    return sum(sum(torch.load(p, map_location="cpu", weights_only=True)["history"]["seconds"])
               for p in sorted(folder.glob("*.pt")))


def execute(source, out, profile="small", parameters=None, force=False, checkpoint_dir=None):
    """Run one notebook with papermill; returns its glued numbers (a dict, with `run` describing the run)."""
    import papermill

    out.mkdir(parents=True, exist_ok=True)
    results = out / f"{source.stem}.json"
    if force or not up_to_date(source, out):
        params = {"profile": profile, "results": str(results.resolve()), **(parameters or {})}
        folder = None if checkpoint_dir is None else (Path(checkpoint_dir) / source.stem).resolve()
        if folder is not None:
            params["checkpoint_dir"] = str(folder)
        run = {"profile": profile, "machine": machine(), "commit": commit(),
               "started": datetime.now(timezone.utc).isoformat(timespec="seconds")}
        if folder is not None:  # a sitting that continues earlier ones: its wall time is not the runs' time
            run["resumed_runs"] = len(list(folder.glob("*.pt")))
        t0 = time.perf_counter()
        running = out / f".{source.stem}.running.ipynb"  # published below only when finished
        papermill.execute_notebook(str(source), str(running), parameters=params, progress_bar=False,
                                   cwd=str(source.parent))
        nb = compact_streams(json.loads(running.read_text(encoding="utf-8")))  # progress bars: last state
        atomic_write(out / source.name, json.dumps(nb, indent=1, ensure_ascii=False) + "\n")
        running.unlink()
        run["wall_s"] = round(time.perf_counter() - t0, 1)
        if folder is not None:
            run["train_s"] = round(training_seconds(folder), 1)
        glued = json.loads(results.read_text())
        write_json(results, {**glued, "run": run})
        print(f"{source.name}: {run['wall_s']:.0f} s", flush=True)
    return json.loads(results.read_text())


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("names", nargs="*", help="notebooks to run (default: all in notebooks/)")
    p.add_argument("--out", type=Path, default=Path("build/executed"))
    p.add_argument("--profile", default="small", choices=("small", "cpu", "paper", "auto"))
    p.add_argument("--force", action="store_true", help="run even if the outputs are up to date")
    p.add_argument("--checkpoint-dir", type=Path, default=None,
                   help="checkpoint every training run here (one folder per chapter) and resume from it")
    args = p.parse_args(argv)
    sources = sorted(NOTEBOOKS.glob("*.ipynb"))
    unknown = [n for n in args.names if n not in {s.stem for s in sources} | {s.name for s in sources}]
    if unknown:
        print(f"error: no chapter called {', '.join(map(repr, unknown))}; choose from "
              f"{', '.join(s.stem for s in sources)}", file=sys.stderr)
        return 2
    if args.names:
        sources = [s for s in sources if s.stem in args.names or s.name in args.names]
    for source in sources:
        execute(source, args.out, args.profile, force=args.force, checkpoint_dir=args.checkpoint_dir)
    return 0


if __name__ == "__main__":
    sys.exit(main())
