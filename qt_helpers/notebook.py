"""Small helpers the chapters share: profiles, glued numbers, the closing environment cell."""
import json
import os
import platform
import time
from pathlib import Path

import torch

from .train import get_device

_START = time.perf_counter()


def resolve_profile(profile="auto", device="auto"):
    """'small' on a CPU, 'paper' on a GPU, for `profile='auto'`; otherwise `profile` itself."""
    if profile not in ("auto", "small", "paper"):
        raise ValueError(f"unknown profile {profile!r}; choose one of auto, small, paper")
    if profile != "auto":
        return profile
    return "paper" if get_device(device).type == "cuda" else "small"


def pick(profile, small, paper, override=None):
    """`override` if given, else the small or paper-scale setting for `profile`."""
    if override is not None:
        return override
    return paper if profile == "paper" else small


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
    Path(path).write_text(json.dumps(GLUED, indent=2, default=float))
    return path


def environment():
    """Versions, device and runtime of this notebook session, as a dict."""
    info = {"python": platform.python_version(), "torch": torch.__version__,
            "device": torch.cuda.get_device_name() if torch.cuda.is_available() else
            f"CPU ({os.cpu_count()} cores)", "runtime_s": round(time.perf_counter() - _START, 1),
            "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}
    from .qnn import _import

    for lib in ("torchquantum", "pennylane", "qt_helpers"):
        try:
            info[lib] = _import(lib).__version__
        except ImportError:
            info[lib] = "not installed"
    return info


def train_run(label, net, train_iter, test_iter, num_epochs, lr, device="auto", checkpoint_dir=None, **fit_args):
    """Train `net` with `fit` and summarise it: label, trained parameters, accuracy, history, seconds."""
    from .models import num_params
    from .train import fit

    ckpt = None if checkpoint_dir is None else Path(checkpoint_dir) / f"{label.replace(' ', '_')}.pt"
    history = fit(net, train_iter, test_iter, num_epochs, lr=lr, device=device, checkpoint=ckpt,
                  resume=ckpt is not None, **fit_args)
    return {"label": label, "params": num_params(net), "test_acc": history["test_acc"][-1],
            "best_test_acc": max(history["test_acc"]), "history": history, "seconds": sum(history["seconds"])}


def runs_table(runs, published=None):
    """A Markdown table of training runs, with published accuracies (%) by label where given."""
    from IPython.display import Markdown

    published = published or {}
    lines = ["| model | trained parameters | epochs | test accuracy | published | time (s) |",
             "|---|---:|---:|---:|---:|---:|"]
    for r in runs:
        pub = published.get(r["label"])
        lines.append(f"| {r['label']} | {r['params']:,} | {len(r['history']['epoch'])} | {100 * r['test_acc']:.2f} % | "
                     f"{'–' if pub is None else f'{pub:.2f} %'} | {r['seconds']:.0f} |")
    return Markdown("\n".join(lines))
