"""Write (or --check) the library code that the book defines in view: every code cell of notebooks/*.ipynb whose
first line is `#@save <module>` is copied verbatim (without that line) into `<module>`, between the two marker
lines of that notebook's region, in the order of the cells (as d2l's `#@save`).

So a definition the chapter shows is the definition the package runs: chapter 1 writes the gate-by-gate
simulator (into qt_helpers/native.py) and the Quantum-Train model (into qt_helpers/qt.py); the package imports
them from there. Edit the chapter, never the region, then rewrite it:

    python tools/save_code.py           # rewrite the regions from the chapters
    python tools/save_code.py --check   # exit 1 if a region differs from its cells (what the tests check)
"""
import argparse
import json
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MARKER = re.compile(r"#@save (\S+)")


def begin(chapter):
    """The first line of `chapter`'s region in a module."""
    return (f"# >>> #@save cells of notebooks/{chapter}.ipynb, written by tools/save_code.py: edit them there, "
            "not here")


def end(chapter):
    """The last line of `chapter`'s region in a module."""
    return f"# <<< end of the #@save cells of notebooks/{chapter}.ipynb"


def saved_cells(notebook):
    """[(module path, code)] of a notebook's `#@save` cells, in order; the code without its marker line."""
    cells = json.loads(Path(notebook).read_text(encoding="utf-8"))["cells"]
    out = []
    for cell in cells:
        source = "".join(cell["source"])
        first, _, code = source.partition("\n")
        match = MARKER.fullmatch(first.strip())
        if cell["cell_type"] == "code" and match:
            out.append((match.group(1), code.strip("\n")))
    return out


def region(codes):
    """The text between a region's marker lines: the cells' code, two blank lines apart."""
    return "\n\n\n".join(codes)


def replace_region(text, chapter, body, module="module"):
    """`text` (a module's source) with `chapter`'s region holding `body`; ValueError if its markers are missing."""
    head, sep, rest = text.partition(begin(chapter) + "\n")
    _, sep2, tail = rest.partition(end(chapter) + "\n")
    if not sep or not sep2:
        msg = (f"{module}: no region for notebooks/{chapter}.ipynb: add the two lines\n"
               f"{begin(chapter)}\n{end(chapter)}\nwhere its #@save cells belong")
        raise ValueError(msg)
    return f"{head}{begin(chapter)}\n{body}\n{end(chapter)}\n{tail}"


def plan(root=ROOT):
    """{module path: wanted text} for every module that a notebook's `#@save` cells write to."""
    wanted = {}
    for notebook in sorted((root / "notebooks").glob("*.ipynb")):
        by_module = {}
        for module, code in saved_cells(notebook):
            by_module.setdefault(module, []).append(code)
        for module, codes in by_module.items():
            path = root / module
            if not path.is_file():
                msg = f"{notebook.name}: `#@save {module}`: no such file"
                raise ValueError(msg)
            text = wanted.get(path, path.read_text(encoding="utf-8"))
            wanted[path] = replace_region(text, notebook.stem, region(codes), module)
    return wanted


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--check", action="store_true", help="change nothing; exit 1 if a region differs")
    args = p.parse_args(argv)
    try:
        wanted = plan()
    except ValueError as e:
        print(f"save_code: {e}", file=sys.stderr)
        return 1
    stale = [path for path, text in wanted.items() if path.read_text(encoding="utf-8") != text]
    if not args.check:
        for path in stale:
            path.write_text(wanted[path], encoding="utf-8")
    names = ", ".join(str(p.relative_to(ROOT)) for p in stale)
    verb = "differ from the chapters' #@save cells" if args.check else "rewritten"
    print(f"{len(stale)} of {len(wanted)} modules {verb}" + (f": {names}" if names else ""))
    if args.check and stale:
        print("run `python tools/save_code.py` after editing a #@save cell (and edit the chapter, not the "
              "module)", file=sys.stderr)
    return 1 if args.check and stale else 0


if __name__ == "__main__":
    sys.exit(main())
