"""Execute the book's notebooks with papermill: `python -m qt_helpers.run_notebooks --out build/executed`.

Each notebook runs once per output folder: `<out>/<name>.ipynb` (executed) and `<out>/<name>.json` (the
numbers it glued) are rewritten only when the source notebook is newer. The `small` profile is what CI
runs on a CPU; `--profile paper` gives the published settings (use a GPU).
"""
import argparse
import json
import sys
import time
from pathlib import Path

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
DEPENDS = {"07_science": NOTEBOOKS.parent / "results" / "runs"}  # data a chapter reads besides its source


def up_to_date(source, out):
    """True when both outputs of `source` exist and are newer than it and than the data it reads."""
    inputs = [source] + sorted(DEPENDS[source.stem].glob("**/*.json") if source.stem in DEPENDS else [])
    newest = max(p.stat().st_mtime for p in inputs)
    outs = [out / f"{source.stem}.ipynb", out / f"{source.stem}.json"]
    return all(p.exists() and p.stat().st_mtime >= newest for p in outs)


def execute(source, out, profile="small", parameters=None, force=False):
    """Run one notebook with papermill; returns its glued numbers (a dict)."""
    import papermill

    out.mkdir(parents=True, exist_ok=True)
    results = out / f"{source.stem}.json"
    if force or not up_to_date(source, out):
        params = {"profile": profile, "results": str(results.resolve()), **(parameters or {})}
        t0 = time.perf_counter()
        papermill.execute_notebook(str(source), str(out / source.name), parameters=params, progress_bar=False,
                                   cwd=str(source.parent))
        print(f"{source.name}: {time.perf_counter() - t0:.0f} s", flush=True)
    return json.loads(results.read_text())


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("names", nargs="*", help="notebooks to run (default: all in notebooks/)")
    p.add_argument("--out", type=Path, default=Path("build/executed"))
    p.add_argument("--profile", default="small", choices=("small", "paper", "auto"))
    p.add_argument("--force", action="store_true", help="run even if the outputs are up to date")
    args = p.parse_args(argv)
    sources = sorted(NOTEBOOKS.glob("*.ipynb"))
    if args.names:
        sources = [s for s in sources if s.stem in args.names or s.name in args.names]
    for source in sources:
        execute(source, args.out, args.profile, force=args.force)
    return 0


if __name__ == "__main__":
    sys.exit(main())
