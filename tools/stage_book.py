"""Stage the book's sources for `jupyter-book build` (run by `make book`; see _config.yml).

Copies _config.yml (with the repository's URL and release tag from pyproject.toml), _toc.yml, references.bib
and book/ into OUT (emptied first), and for every chapter
notebook named in the TOC the executed copy: `results/notebooks/<name>.ipynb` (a recorded full-scale run) where it
exists, else `build/executed/<name>.ipynb` (the CI run of `make notebooks`). Nothing is executed here
(`stage_notebook` says what staging changes in how outputs show). TOC chapters whose notebook does not
exist yet are left out with a note; a notebook missing from the TOC is an error. It writes the results
page from those notebooks (`qtbook.results_page`), the intro's and the results page's verdict
(`qtbook.verdict`), chapter 7's appendix from results/runs/
(`qtbook.science_page`), and copies MathJax 3 into OUT/_mathjax/mathjax/,
which Sphinx publishes as _static/mathjax/ (no CDN).
"""
import argparse
import json
import shutil
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from chapter_cells import release  # noqa: E402
from qtbook.results_page import with_verdict, write_page  # noqa: E402
from qtbook.run_notebooks import DEPENDS, compact_streams  # noqa: E402
from qtbook.science_page import appendix_markdown  # noqa: E402


def toc_files(node):
    """Every `file:` entry of a (part of a) _toc.yml, in order."""
    if isinstance(node, dict):
        return ([node["file"]] if "file" in node else []) + [f for v in node.values() for f in toc_files(v)]
    if isinstance(node, list):
        return [f for v in node for f in toc_files(v)]
    return []


def drop_files(node, missing):
    """The TOC without the entries whose file is in `missing` (and without parts left empty)."""
    if isinstance(node, dict):
        node = {k: drop_files(v, missing) for k, v in node.items()}
        return {k: v for k, v in node.items() if not (k == "chapters" and not v)}
    if isinstance(node, list):
        node = [drop_files(v, missing) for v in node if not (isinstance(v, dict) and v.get("file") in missing)]
        return [v for v in node if not (isinstance(v, dict) and "caption" in v and "chapters" not in v)]
    return node


def complete(path):
    """True for a recorded run that finished: papermill's end time, no exception, and its `run` record."""
    if not path.exists() or not path.with_suffix(".json").exists():
        return False
    pm = json.loads(path.read_text(encoding="utf-8"))["metadata"].get("papermill", {})
    return bool(pm.get("end_time")) and not pm.get("exception") and "run" in json.loads(
        path.with_suffix(".json").read_text())


def sittings(run):
    """A recorded run's time: its wall time, or, where it continued runs checkpointed by earlier sittings, this
    sitting's wall time beside its runs' training time in all."""
    wall = f"wall time {run['wall_s'] / 60:.0f} minutes" if run["wall_s"] >= 60 else f"wall time {run['wall_s']:.0f} s"
    if not run.get("resumed_runs"):
        return wall
    return (f"{wall} in its last session, which continued {run['resumed_runs']} runs from checkpoints of earlier "
            f"sessions; its runs trained for {run['train_s'] / 3600:.1f} hours in all")


# chapters whose CI execution trains at full size: the glued (training, test) image counts that say so
FULL_IN_CI = {"01_concept": ("concept_n_train", "concept_n_test")}


def banner(source):
    """The note a chapter page opens with: its recorded run (machine, profile, date, commit, wall time), or,
    for a CI execution, that its numbers are a regression check and not results (or, for a chapter that CI
    trains at full size, its data)."""
    record = source.with_suffix(".json")
    run = json.loads(record.read_text()).get("run") if record.exists() else None
    if source.parent.resolve() == (ROOT / "results/notebooks").resolve():
        if not run:
            sys.exit(f"stage_book: {record} has no `run` record (machine, date, commit, wall time); rerun the "
                     "chapter with `python -m qtbook.run_notebooks ... --out results/notebooks`")
        return (f"```{{admonition}} Recorded run\n:class: note\nThis page is the recorded run of this chapter: "
                f"profile `{run['profile']}` on {run['machine']}, started {run['started']}, commit "
                f"`{run['commit']}`, {sittings(run)}. Every number below comes from it.\n```")
    if source.stem in DEPENDS:  # a chapter that reads recorded runs (chapter 7: results/runs/)
        return (f"```{{admonition}} Recorded runs\n:class: note\nThis page reads the recorded runs in "
                f"`{DEPENDS[source.stem].relative_to(ROOT)}/`: each run's command, machine, date and wall time are "
                "in its record. The page itself was executed by CI, which trains nothing here.\n```")
    numbers = json.loads(record.read_text()) if record.exists() else {}
    if source.stem in FULL_IN_CI and all(k in numbers for k in FULL_IN_CI[source.stem]):
        n_train, n_test = (numbers[k] for k in FULL_IN_CI[source.stem])
        return (f"```{{admonition}} Executed by CI, at full size\n:class: note\nThis page was executed by CI on a "
                f"CPU, which trains it as every profile does: {n_train:,} training and {n_test:,} test images, one "
                "seed. The session it ran in (machine, versions, time) is listed at the end of the page.\n```")
    return ("```{admonition} CI-scale check, not results\n:class: warning\nThis page was executed by CI at the "
            "`small` profile (data subsets, a few epochs, a 2-core CPU): its numbers check that the code runs "
            "and learns, they are not results. No full-scale run of this chapter is recorded yet "
            "(`results/notebooks/`).\n```")


def stage_notebook(source, dest, note=None):
    """Copy an executed notebook for the book, changing only how outputs show, never what they are:
    papermill's injected-parameters cell is hidden (it holds this machine's paths; each chapter prints its
    profile and sizes itself), and stream outputs are shown as a terminal (or Jupyter) shows them, so a
    progress bar is its last state rather than hundreds of lines
    (and a cleared one, nothing). `note` (Markdown) is inserted after the title cell. Nothing is executed."""
    nb = compact_streams(json.loads(source.read_text(encoding="utf-8")))
    if note:
        nb["cells"].insert(1, {"cell_type": "markdown", "id": "staged-note", "metadata": {},
                               "source": note.splitlines(keepends=True)})
    for cell in nb["cells"]:
        tags = cell.get("metadata", {}).get("tags", [])
        if "injected-parameters" in tags and "remove-cell" not in tags:
            cell["metadata"]["tags"] = [*tags, "remove-cell"]
    dest.parent.mkdir(parents=True, exist_ok=True)
    dest.write_text(json.dumps(nb, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")


def mathjax_unused(root):
    """copytree `ignore`: the combined components other than tex-mml-chtml.js and the SVG output (12 MB)."""
    def ignore(folder, names):
        if Path(folder) == root:
            return [n for n in names if n.endswith(".js") and n != "tex-mml-chtml.js"]
        return ["svg", "svg.js"] if Path(folder) == root / "output" else []
    return ignore


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, default=ROOT / "build/book-src")
    p.add_argument("--executed", type=Path, default=ROOT / "build/executed")
    p.add_argument("--paper", type=Path, default=ROOT / "results/notebooks")
    p.add_argument("--mathjax", type=Path, default=ROOT / "build/node/node_modules/mathjax/es5")
    args = p.parse_args(argv)

    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    chapters = [f for f in toc_files(toc) if f.startswith("notebooks/")]
    sources = {f"notebooks/{s.stem}" for s in (ROOT / "notebooks").glob("*.ipynb")}
    if sources - set(chapters):
        sys.exit(f"stage_book: notebooks missing from _toc.yml: {sorted(sources - set(chapters))}")
    missing = {f for f in chapters if f not in sources}
    for f in sorted(missing):
        print(f"stage_book: NOTE: {f}.ipynb does not exist yet; left out of this build's TOC", flush=True)

    if args.out.exists():
        shutil.rmtree(args.out)
    args.out.mkdir(parents=True)
    shutil.copy2(ROOT / "references.bib", args.out / "references.bib")
    config = yaml.safe_load((ROOT / "_config.yml").read_text())
    url, tag = release()  # pyproject.toml's, as in the Colab cells: the launch buttons open this release
    config["repository"].update(url=url, branch=tag)
    (args.out / "_config.yml").write_text(yaml.safe_dump(config, sort_keys=False, allow_unicode=True))
    (args.out / "_toc.yml").write_text(yaml.safe_dump(drop_files(toc, missing), sort_keys=False))
    shutil.copytree(ROOT / "book", args.out / "book")
    intro = args.out / "book/intro.md"  # opens with the verdict, from results/runs/
    intro.write_text(with_verdict((ROOT / "book/intro.md").read_text(encoding="utf-8"), intro.parent),
                     encoding="utf-8")

    staged = []
    for f in chapters:
        if f in missing:
            continue
        name = Path(f).name
        paper, ci = args.paper / f"{name}.ipynb", args.executed / f"{name}.ipynb"
        chosen = paper if complete(paper) else ci
        if paper.exists() and chosen is ci:
            print(f"stage_book: NOTE: {paper.name} is not a finished recorded run (still running, or failed); "
                  "using the CI execution")
        if not chosen.exists():
            sys.exit(f"stage_book: no executed copy of {f}.ipynb: run `make notebooks` (looked for {paper} and {ci})")
        stage_notebook(chosen, args.out / f"{f}.ipynb", banner(chosen))
        print(f"stage_book: {f}.ipynb <- {chosen.relative_to(ROOT) if chosen.is_relative_to(ROOT) else chosen}")
        staged.append(chosen)
    write_page(ROOT / "book/results.md", args.out / "book/results.md", staged)
    appendix = args.out / "book/science_appendix.md"  # chapter 7's tables, from results/runs/
    appendix.write_text(appendix_markdown(), encoding="utf-8")

    if not (args.mathjax / "tex-mml-chtml.js").exists():
        sys.exit(f"stage_book: MathJax 3 not found in {args.mathjax} (make book installs it with npm)")
    shutil.copytree(args.mathjax, args.out / "_mathjax/mathjax", ignore=mathjax_unused(args.mathjax))
    print(f"stage_book: staged {len(staged)} chapters in {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
