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
        return value
    myst_glue(name, value, display=display)
    return value


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
    for lib in ("torchquantum", "pennylane", "qt_helpers"):
        try:
            info[lib] = __import__(lib).__version__
        except ImportError:
            info[lib] = "not installed"
    return info
