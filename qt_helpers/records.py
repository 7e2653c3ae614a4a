"""Files the project writes, and the run records it reads back: one atomic write, one content check.

Every output (a run's JSON, an exported CNN, a checkpoint, a grid's record, an executed notebook, the results
page) goes through `atomic_write`: a temporary file in the same folder, renamed over the target only once it is
complete, so a full disk or a killed process leaves the old file whole. Every reader of run records asks
`record_problems` whether a record is what it is taken for.
"""
import hashlib
import json
import math
import os
import tempfile
from pathlib import Path


def atomic_write(path, data):
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
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp's 0600 would make records unreadable to others
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def _umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_json(path, obj):
    """`obj` as indented JSON at `path`, atomically."""
    return atomic_write(path, json.dumps(obj, indent=2, default=float) + "\n")


def data_pack(source):
    """A portable name of a data source: {'name', 'sha256'} of a pack file, else its last path parts."""
    path = Path(str(source))
    if path.is_file():
        with open(path, "rb") as f:
            return {"name": path.name, "sha256": hashlib.file_digest(f, "sha256").hexdigest()}
    kind, _, where = str(source).rpartition(":")
    return {"name": (kind + ":" if kind else "") + "/".join(Path(where).parts[-2:])}


METRICS = ("test_accuracy", "val_accuracy", "test_loss")


def record_problems(record, expect=None):
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
