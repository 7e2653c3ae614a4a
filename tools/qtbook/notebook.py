"""Small helpers the chapters share: profiles, glued numbers, the closing environment cell."""
import time
from pathlib import Path

import pandas as pd
import torch

from qt_helpers.records import provenance, write_json
from qt_helpers.train import get_device

_START = time.perf_counter()


PROFILES = {  # what each chapter profile means; chapters set their sizes with `pick`
    "small": "CI scale on a CPU: data subsets and a few epochs, a regression check, not results",
    "cpu": "full data, sized for this project's 2-core CPU (hours, in the background)",
    "paper": "full data at the original's scale (a GPU)",
}


def resolve_profile(profile="auto", device="auto"):
    """'small' on a CPU, 'paper' on a GPU, for `profile='auto'`; otherwise `profile` itself (see PROFILES)."""
    if profile != "auto" and profile not in PROFILES:
        msg = f"parameter profile: unknown profile {profile!r}; choose one of auto, {', '.join(PROFILES)}"
        raise ValueError(msg)
    if profile != "auto":
        return profile
    return "paper" if get_device(device).type == "cuda" else "small"


def pick(profile, small, paper, override=None, cpu=None):
    """`override` if given, else the setting of `profile`: `small`, `paper`, or `cpu` (default: as paper)."""
    if override is not None:
        return override
    if profile == "cpu":
        return paper if cpu is None else cpu
    return paper if profile == "paper" else small


def check_params(params, counts=(), nonnegative=(), choices=None):
    """Check a chapter's parameters before any work: each name in `counts` is None or a whole number >= 1,
    each in `nonnegative` a whole number >= 0, each key of `choices` one of its values, and a `device` one this
    machine has. Raises ValueError naming the bad parameter (papermill passes `-p blocks abc` as the text 'abc')."""
    def whole(v):
        return isinstance(v, int) and not isinstance(v, bool)

    for name in counts:
        v = params[name]
        if v is not None and not (whole(v) and v >= 1):
            msg = f"parameter {name}: expected a whole number >= 1 (or None), got {v!r}"
            raise ValueError(msg)
    for name in nonnegative:
        v = params[name]
        if not (whole(v) and v >= 0):
            msg = f"parameter {name}: expected a whole number >= 0, got {v!r}"
            raise ValueError(msg)
    for name, valid in (choices or {}).items():
        if params[name] not in valid:
            msg = f"parameter {name}: {params[name]!r} is not one of {', '.join(map(str, valid))}"
            raise ValueError(msg)
    device = params.get("device")
    if device is not None and device != "auto":
        try:
            kind = get_device(device).type
        except (RuntimeError, TypeError) as e:
            msg = (
                f"parameter device: {device!r} is not a device torch knows ({e}); use 'auto', "
                             "'cpu' or 'cuda'"
            )
            raise ValueError(msg) from None
        if kind == "cuda" and not torch.cuda.is_available():
            msg = f"parameter device: {device!r}, but this machine has no CUDA GPU; use 'auto' or 'cpu'"
            raise ValueError(msg)


def glue(name, value, display=False):
    """Record a number for the book (myst-nb `glue`), or just keep it when myst-nb is missing (Colab)."""
    GLUED[name] = value
    try:
        from myst_nb import glue as myst_glue
    except ImportError:
        if display:
            print(f"{name} = {value}")
        return
    myst_glue(name, value, display=display)


GLUED = {}


def save_glued(path):
    """Write every glued number to a JSON file (the book's results page reads these)."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    write_json(path, GLUED)
    return path


def environment():
    """Versions, device and runtime of this notebook session, as a dict."""
    p = provenance(get_device("auto"))
    info = {"python": p["python"], "torch": p["torch"], "device": f"{p['device_name']}, {p['cpu_cores']} cores",
            "runtime_s": round(time.perf_counter() - _START, 1), "date": p["date"], "commit": p["commit"]}
    from qt_helpers.qnn import _import

    for lib in ("torchquantum", "pennylane", "qt_helpers"):
        try:
            info[lib] = _import(lib).__version__
        except ImportError:
            info[lib] = "not installed"
    return info


def train_run(label, net, train_iter, test_iter, num_epochs, lr, device="auto", checkpoint_dir=None, **fit_args):
    """Train `net` with `fit` and summarise it: label, trained parameters, accuracy, history, seconds.
    Prints one line per run (the chapters plot the curves); `checkpoint_dir` makes it resumable."""
    from qt_helpers.models import num_params
    from qt_helpers.train import fit

    ckpt = None if checkpoint_dir is None else Path(checkpoint_dir) / f"{slug(label)}.pt"
    identity = {"label": label, "model": repr(net), "params": num_params(net), "n_train": len(train_iter.x),
                "data": data_fingerprint(train_iter), "lr": lr}  # a resumed run must be this run
    fit_args = {"log_epochs": False, **fit_args}
    history = fit(net, train_iter, test_iter, num_epochs, lr=lr, device=device, checkpoint=ckpt,
                  resume=ckpt is not None and ckpt.exists(), identity=identity, **fit_args)
    run = {"label": label, "params": num_params(net), "test_acc": history["test_acc"][-1],
           "best_test_acc": max(history["test_acc"]), "history": history, "seconds": sum(history["seconds"])}
    epochs = len(history["epoch"])
    print(f"{label}: {run['params']:,} trained parameters, {epochs} epoch{'s' * (epochs != 1)}, test accuracy "
          f"{run['test_acc']:.2%} (best {run['best_test_acc']:.2%}), {run['seconds'] / 60:.1f} min")
    return run


def train_models(dataset, blocks, train_iter, test_iter, qt_epochs, classical_epochs, device="auto",
                 checkpoint_dir=None, backend="native", seed=42):
    """Chapter 2's four runs on `dataset`: QT with the reference and the improved recipe, the classical CNN and
    the CNN with QT's budget, each by its named recipe (`qth.RECIPES`)."""
    from qt_helpers.models import budget_cnn, num_params
    from qt_helpers.recipes import RECIPES

    runs = []
    for label, recipe, epochs in (("QT reference", "reference", qt_epochs), ("classical CNN", "classical",
                                  classical_epochs), ("classical CNN, QT's budget", "classical", classical_epochs),
                                  ("QT improved", "improved", qt_epochs)):
        r = RECIPES[recipe]
        torch.manual_seed(seed)
        if label.endswith("budget"):
            net = budget_cnn(dataset, num_params(RECIPES["reference"].build(dataset, blocks)))
        else:
            net = r.build(dataset, blocks, backend=backend, seed=seed) if r.model == "qt" else r.build(dataset)
        runs.append(train_run(f"{label} (L={blocks})" if r.model == "qt" else label, net, train_iter, test_iter,
                              epochs, r.lr, device, checkpoint_dir, schedule=r.schedule))
    return runs


def late_gain(accs):
    """Has a curve flattened? The accuracy gained over the last third of the epochs (at least the last one)."""
    third = min(max(1, len(accs) // 3), len(accs) - 1)
    return accs[-1] - accs[-1 - third]


def trend(accs, tol=0.01):
    """'still rising', 'flat' or 'falling': the late gain (`late_gain`) read against `tol` (1 point)."""
    gain = late_gain(accs)
    return "still rising" if gain > tol else "falling" if gain < -tol else "flat"


def slug(label):
    """A file name for a run label: letters, digits, '-', '_' and '.' kept, the rest '_'."""
    return "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in label)


def data_fingerprint(loader):
    """A short fingerprint of a loader's data (size, shape and a checksum of its first images)."""
    x = loader.x[:256].double()
    return f"{len(loader.x)}x{tuple(loader.x.shape[1:])}:{x.sum().item():.6e}:{x.square().sum().item():.6e}"


def percent(x, std=None):
    """An accuracy, stored as a fraction everywhere, as the book shows it: '97.87 %', with a standard deviation
    '97.87 ± 0.12 %' ('–' for None)."""
    if x is None:
        return "–"
    return f"{100 * x:.2f} %" if std is None else f"{100 * x:.2f} ± {100 * std:.2f} %"


def markdown_table(table, rows=None, left=1):
    """The book's one Markdown table (pandas `to_markdown`, i.e. tabulate): a DataFrame, or a header and rows,
    cells shown as given (str()), the first `left` columns left-aligned and the others (numbers) right-aligned."""
    frame = table if rows is None else pd.DataFrame([list(row) for row in rows], columns=list(table))
    align = ["left"] * left + ["right"] * (frame.shape[1] - left)
    return frame.astype(str).to_markdown(index=False, colalign=align, disable_numparse=True)


def runs_table(runs, published=None):
    """A Markdown table of training runs, with published accuracies (fractions) by label where given."""
    from IPython.display import Markdown

    published = published or {}
    rows = [(r["label"], f"{r['params']:,}", len(r["history"]["epoch"]), percent(r["test_acc"]),
             percent(published.get(r["label"])), f"{r['seconds']:.0f}") for r in runs]
    return Markdown(markdown_table(("model", "trained parameters", "epochs", "test accuracy", "published",
                                    "time (s)"), rows))
