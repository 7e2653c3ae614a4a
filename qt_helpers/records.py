"""Files the project writes, and the run records it reads back: one atomic write, one record builder with one
provenance (`provenance`: code commit, machine, versions, date), one content check.

Every output (a run's JSON, an exported CNN, a checkpoint, a grid's record, an executed notebook, the results
page) goes through `atomic_write`: a temporary file in the same folder, renamed over the target only once it is
complete, so a full disk or a killed process leaves the old file whole. Every reader of run records asks
`record_problems` whether a record is what it is taken for.
"""
from __future__ import annotations

import hashlib
import json
import math
import os
import platform
import subprocess
import tempfile
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

import torch

from .data import Data

if TYPE_CHECKING:  # for annotations only: spec imports train, which imports this module
    from .spec import RunSpec


def atomic_write(path: Path | str, data: str | bytes | Callable[[BinaryIO], object]) -> Path:
    """Write `data` (str, bytes, or a function that writes to a binary file object) to `path` atomically."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            if callable(data):
                data(f)
            else:
                f.write(data.encode("utf-8") if isinstance(data, str) else data)
            f.flush()
            os.fsync(f.fileno())
        Path(tmp).chmod(0o666 & ~_umask())  # mkstemp's 0600 would make records unreadable to others
        Path(tmp).replace(path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_json(path: Path | str, obj: Any) -> Path:
    """`obj` as indented JSON at `path`, atomically."""
    return atomic_write(path, json.dumps(obj, indent=2, default=float) + "\n")


def data_pack(source: Path | str) -> dict[str, str]:
    """A portable name of a data source: {'name', 'sha256'} of a pack file, else its last path parts."""
    path = Path(str(source))
    if path.is_file():
        with path.open("rb") as f:
            return {"name": path.name, "sha256": hashlib.file_digest(f, "sha256").hexdigest()}
    kind, _, where = str(source).rpartition(":")
    return {"name": (kind + ":" if kind else "") + "/".join(Path(where).parts[-2:])}


def cpu_model() -> str:
    """The CPU's model name ('AMD EPYC'), from /proc/cpuinfo where there is one, else its architecture."""
    try:
        with Path("/proc/cpuinfo").open() as f:
            return next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        return f"{platform.processor() or platform.machine()} CPU"


def device_name(device: torch.device | str = "cpu") -> str:
    """The machine a run used, in words: the GPU's name, or the CPU's model and torch's thread count."""
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    n = torch.get_num_threads()
    return f"{cpu_model()} ({n} thread{'' if n == 1 else 's'})"


def code_commit() -> str | None:
    """$QT_CODE_COMMIT (a grid run from a snapshot of a commit sets it), else the git commit of the code that runs
    ('+dirty' if tracked files differ), else None."""
    if os.environ.get("QT_CODE_COMMIT"):
        return os.environ["QT_CODE_COMMIT"]

    def git(*a: str) -> str:
        return subprocess.run(["git", "-C", str(Path(__file__).parent), *a], capture_output=True, text=True,
                              timeout=10, check=False).stdout.strip()
    try:
        commit = git("rev-parse", "HEAD")
        return commit + ("+dirty" if git("status", "--porcelain", "--untracked-files=no") else "") if commit else None
    except (OSError, subprocess.SubprocessError):
        return None


def provenance(device: torch.device | str = "cpu") -> dict[str, Any]:
    """Where and with what a result was made: the one provenance of every record, benchmark and chapter."""
    from . import __version__

    return {"device": str(device), "device_name": device_name(device), "cpu_cores": os.cpu_count(),
            "torch": torch.__version__, "cuda": torch.version.cuda, "python": platform.python_version(),
            "qt_helpers": __version__, "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "commit": code_commit()}


def run_record(spec: RunSpec, info: dict[str, Any], history: dict[str, list], data: Data, device: torch.device | str,
               **results: Any) -> dict[str, Any]:
    """A run's JSON record: its settings (`spec`, resolved), model sizes (`info`), metrics and `history`, the
    data it read (`data`), `provenance`, and `results` (test_accuracy, train_seconds, command, ...)."""
    qt = spec.model == "qt"
    return {"dataset": spec.dataset, "model": spec.model, "backend": spec.backend if qt else None,
            "ansatz": spec.ansatz if qt else None, "preset": spec.preset, "blocks": spec.blocks if qt else None,
            **info, "recipe": {k: getattr(spec, k) for k in ("activation", "trainable_transform", "standardize",
                                                             "init", "shots", "relu", "schedule", "budget")},
            "test_accuracy": None, "test_loss": None, "epochs": spec.epochs, "batch_size": spec.batch_size,
            "lr": spec.lr, "seed": spec.seed, "n_train": len(data.y_train), "n_test": len(data.y_test),
            "data_source": data_pack(data.source), "n_val": None if data.y_val is None else len(data.y_val),
            "val_accuracy": history["val_acc"][-1] if history.get("val_acc") else None, "history": history,
            "recipe_name": spec.recipe, "settings": spec.settings(), "key": spec.key(), **provenance(device),
            **results}


METRICS = ("test_accuracy", "val_accuracy", "test_loss")


def record_problems(record: Any, expect: dict[str, Any] | None = None) -> list[str]:
    """What makes `record` (a run's JSON) unfit where it is read: a list of short reasons, empty if it fits.

    A record fits when it is a finished, non-diverged run (every epoch in its history) whose accuracies are
    finite, and whose own fields equal `expect` (e.g. {'dataset': 'mnist', 'epochs': 10, 'n_train': 60000}).
    """
    if not isinstance(record, dict):
        return [f"not a run record ({type(record).__name__})"]
    problems = []
    if record.get("diverged"):
        problems.append(f"diverged ({str(record.get('error', 'non-finite loss'))[:80]})")
    history = record.get("history")
    try:
        if len(history["epoch"]) != record["epochs"]:
            problems.append(f"unfinished: {len(history['epoch'])} of {record['epochs']} epochs")
    except (TypeError, KeyError) as e:
        problems.append(f"no history of its epochs ({type(e).__name__}: {e})")
    if record.get("test_accuracy") is None and record.get("val_accuracy") is None:
        problems.append("no test or validation accuracy")
    for key in METRICS:
        value = record.get(key)
        if value is not None and not (isinstance(value, (int, float)) and math.isfinite(value)):
            problems.append(f"{key} is {value!r}, not a finite number")
    for key, value in (expect or {}).items():
        if record.get(key) != value:
            problems.append(f"{key} {record.get(key)!r}, expected {value!r}")
    return problems
