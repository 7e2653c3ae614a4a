"""`run(spec)`: train the run a `RunSpec` describes and return its record (chapter 7; the CLI's `train`).

    record = run(RunSpec.create(recipe="tuned", epochs=5), Outputs(json="build/run.json"))

Everything is checked before any data is loaded (the spec by `RunSpec.check`, the files by `Outputs.check`); the
record (`records.run_record`: settings, metrics, history, provenance) is what `--json` saves, atomically.
"""
from __future__ import annotations

import math
import os
import shlex
import time
from dataclasses import dataclass, fields
from pathlib import Path

import torch

from . import __version__
from .controls import control_model, param_rows, param_table
from .data import load_loaders
from .models import budget_cnn, cnn, num_params, standardize_weights
from .qt import qt_model
from .records import atomic_write, run_record, write_json
from .spec import RunSpec
from .train import Diverged, check_fit_args, checkpoint_epochs, evaluate, fit, set_seed


@dataclass(frozen=True)
class Outputs:
    """Where a run's files go and how it is watched; not part of what the run is (its `RunSpec`)."""

    json: str | None = None  # the run record
    checkpoint: str | None = None  # saved after every epoch
    resume: bool = False  # continue from `checkpoint`
    extend: bool = False  # with resume and more epochs: continue a finished run
    export: str | None = None  # the trained CNN's plain state_dict
    overwrite: bool = False  # replace existing files (never done without it)
    tensorboard: str | None = None  # a folder for TensorBoard curves
    progress: bool = True  # a progress bar
    data_dir: str | None = None  # folder with <dataset>.npz packs
    cuda_graph: bool = False  # replay each step from one captured CUDA graph (chapter 6)

    def check(self, spec: RunSpec, device: torch.device) -> int | None:
        """Raise ValueError for outputs that cannot be written or a checkpoint that cannot be resumed, before any
        work; returns the epochs of the finished run that `extend` continues (else None)."""
        for flag, path in (("--json", self.json), ("--export", self.export)):
            _writable(path, flag, self.overwrite)
        if self.checkpoint is not None:
            _writable(self.checkpoint, "--checkpoint", overwrite=True)  # its own rules follow
        seen = {}
        for flag in ("--json", "--export", "--checkpoint"):
            path = getattr(self, flag[2:])
            if path is not None:
                if os.path.realpath(path) in seen:
                    msg = (f"{seen[os.path.realpath(path)]} and {flag} are the same file {path}; give each "
                           "output its own name")
                    raise ValueError(msg)
                seen[os.path.realpath(path)] = flag
        if self.cuda_graph and device.type != "cuda":
            msg = f"--cuda-graph needs a CUDA GPU and this run is on {device.type}; drop --cuda-graph"
            raise ValueError(msg)
        try:
            check_fit_args(spec.epochs, spec.lr, self.checkpoint, self.resume, self.overwrite)
        except ValueError as e:
            raise ValueError(str(e).replace("resume it, or overwrite it explicitly (CLI: --resume or --overwrite)",
                                            "pass --resume to continue it or --overwrite to start over")) from None
        if self.tensorboard is not None:
            try:
                from torch.utils.tensorboard import SummaryWriter  # noqa: F401
            except ImportError:
                msg = "--tensorboard needs the tensorboard package: pip install tensorboard"
                raise ValueError(msg) from None
            if Path(self.tensorboard).is_file():
                msg = f"--tensorboard {self.tensorboard} is a file; give a folder"
                raise ValueError(msg)
        return self.resume_plan(spec) if self.resume else None

    def resume_plan(self, spec):
        """None to continue the checkpoint's run as it was started, or the epochs of the finished run that
        `spec.epochs` extends; other epochs are refused, naming what the checkpoint holds."""
        try:
            state = torch.load(self.checkpoint, map_location="cpu", weights_only=True)
            target, done = state["identity"]["num_epochs"], len(state["history"]["epoch"])
        except Exception:
            return None  # unreadable, or without an identity: `fit` says why
        if spec.epochs == target:
            return None
        if spec.epochs < target:
            msg = (f"checkpoint {self.checkpoint} is a {target}-epoch run ({done} done); --epochs "
                   f"{spec.epochs} cannot shorten it: pass --epochs {target} to resume it, or more to "
                   "extend it")
            raise ValueError(msg)
        if done < target:
            msg = (f"checkpoint {self.checkpoint} holds {done} of its {target} epochs: finish it first "
                   f"(--epochs {target} --resume), then extend it with more --epochs and --extend")
            raise ValueError(msg)
        if not self.extend:  # never implicit: a grid's --resume must not turn another run into its own
            msg = (f"checkpoint {self.checkpoint} is a finished {target}-epoch run: add --extend to "
                   f"continue it to {spec.epochs} epochs, or delete this one to start over")
            raise ValueError(msg)
        return target

    def argv(self) -> list[str]:
        """These outputs as `train` flags."""
        out = []
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name == "progress":
                out += [] if value else ["--no-progress"]
            elif value is True:
                out.append("--" + f.name.replace("_", "-"))
            elif value not in (None, False):
                out += ["--" + f.name.replace("_", "-"), str(value)]
        return out


def _writable(path, flag, overwrite):
    """Check before any work that `path` can be written: its folder exists and is writable, and an existing
    file is replaced only with overwrite."""
    if path is None:
        return
    path = Path(path)
    if path.is_dir():
        msg = f"{flag} {path} is a folder; give a file name"
        raise ValueError(msg)
    if not path.parent.is_dir():
        msg = f"{flag} {path}: folder {path.parent} does not exist; create it first"
        raise ValueError(msg)
    if not os.access(path.parent, os.W_OK):
        msg = f"{flag} {path}: folder {path.parent} is not writable"
        raise ValueError(msg)
    if path.exists() and not overwrite:
        msg = f"{flag} {path} already exists; pass --overwrite to replace it, or choose another name"
        raise ValueError(msg)


def build_model(spec: RunSpec):
    """The QT, control or classical model `spec` trains, and its parameter rows."""
    if spec.model == "classical":
        net = cnn(spec.dataset, spec.relu) if spec.budget is None else budget_cnn(spec.dataset, spec.budget,
                                                                                   spec.relu, spec.standardize)
        net = standardize_weights(net) if spec.standardize and spec.budget is None else net
        return net, {"cnn_params": num_params(net), "qt_params": None, "qubits": None}
    options = {k: getattr(spec, k) for k in ("activation", "init", "shots") if getattr(spec, k) is not None}
    options.update({k: True for k in ("trainable_transform", "standardize") if getattr(spec, k)})
    shape = (spec.dataset, spec.blocks, spec.backend, spec.ansatz, spec.preset)
    net = qt_model(*shape, relu=spec.relu, seed=spec.seed, n_qubits=spec.qubits, **options)
    if spec.control:  # the same QT model, one thing changed (qt_helpers.controls)
        control = control_model(spec.control, *shape, relu=spec.relu, seed=spec.seed, n_qubits=spec.qubits,
                                **options)
        return control, param_table(control, budget=num_params(net))
    return net, net.param_table()


def print_params(info):
    """Print the parameter table of a model."""
    if info.get("control"):
        rows = param_rows(info)
    elif info["qt_params"] is None:
        rows = [("CNN parameters (all trained)", f"{info['cnn_params']:,}")]
    else:
        rows = [("CNN parameters (generated)", f"{info['cnn_params']:,}"), ("qubits", info["qubits"]),
                ("QNN blocks", info["blocks"]), ("QNN angles", f"{info['qnn_params']:,}"),
                ("mapping-model parameters", f"{info['mapping_params']:,}"),
                ("QT trainable parameters", f"{info['qt_params']:,}"), ("QT / CNN", f"{info['ratio']:.2%}")]
    width = max(len(k) for k, _ in rows)
    print("\n".join(f"  {k:<{width}}  {v:>12}" for k, v in rows), flush=True)


class Board:
    """TensorBoard: the training loss of every step while training, and every per-epoch curve of the history
    (losses, accuracies, learning rate) when it ends; the JSON stays the record."""

    def __init__(self, folder, settings, steps_per_epoch):
        from torch.utils.tensorboard import SummaryWriter

        self.writer, self.steps = SummaryWriter(folder), steps_per_epoch
        self.writer.add_text("settings", "\n".join(f"    {k}: {v}" for k, v in settings.items()))

    def step(self, epoch, step, loss):
        self.writer.add_scalar("step/train_loss", loss, epoch * self.steps + step + 1)

    def close(self, history):
        for key, values in history.items():
            for epoch, value in zip(history["epoch"], values, strict=True):
                if key != "epoch" and value is not None and math.isfinite(value):
                    self.writer.add_scalar(f"epoch/{key}", value, epoch)
        self.writer.close()


def run(spec: RunSpec, out: Outputs | None = None, command: list[str] | None = None) -> dict:
    """Train the run `spec` describes, writing `out`'s files; returns its record (`records.run_record`).
    `command`: the command line that reproduces it (recorded; default: `python -m qt_helpers train` + flags)."""
    out = out or Outputs()
    device = spec.check()
    spec = spec.resolved()
    extend_from = out.check(spec, device)
    command = command or ["python", "-m", "qt_helpers", "train", *spec.argv(), *out.argv()]
    set_seed(spec.seed)
    net, info = build_model(spec)  # before the data: the model's own checks (a backend installed, ...)
    t0 = time.perf_counter()
    train_iter, test_iter, data = load_loaders(spec.dataset, spec.batch_size, spec.n_train, spec.n_test,
                                               out.data_dir, spec.seed, device, val_fraction=spec.val_fraction)
    load_seconds = time.perf_counter() - t0
    val = "" if data.y_val is None else f" / {len(data.y_val):,} validation"
    print(f"{spec.dataset}: {len(data.y_train):,} train{val} / {len(data.y_test):,} test images from {data.source} "
          f"({load_seconds:.1f} s)")
    label = "classical CNN" if spec.model == "classical" else f"QT ({spec.backend}, {spec.ansatz})"
    print(f"{f'control {spec.control} of {label}' if spec.control else label} on {device}:")
    print_params(info)
    settings = spec.settings()
    identity = dict(settings)  # what a checkpoint must have been made by
    if spec.test == "epochs":  # the behaviour before --test existed: absent, so older checkpoints still resume
        del identity["test"]
    if extend_from or out.resume:  # an extended run keeps the epochs it started with
        started = _started_epochs(out.checkpoint)
        identity["epochs"] = started if started is not None else spec.epochs
    if extend_from:
        print(f"extending {out.checkpoint} from {extend_from} to {spec.epochs} epochs"
              + (f" (the cosine decay goes on from the lr a {spec.epochs}-epoch run has there)"
                 if spec.schedule == "cosine" else ""))
    resumed = checkpoint_epochs(out.checkpoint) if out.resume else 0

    def record(history, test_acc, test_loss, train_seconds, **status):
        return run_record(spec, info, history, data, device, test_accuracy=test_acc, test_loss=test_loss,
                          train_seconds=train_seconds, load_seconds=load_seconds, resumed_after_epoch=resumed,
                          extended_from_epochs=extend_from, command=shlex.join(command), **status)

    board = None if out.tensorboard is None else Board(out.tensorboard, settings, len(train_iter))
    t0 = time.perf_counter()
    try:
        history = fit(net, train_iter, test_iter if spec.test == "epochs" else None, spec.epochs, lr=spec.lr,
                      schedule=spec.schedule, device=device, checkpoint=out.checkpoint, resume=out.resume,
                      progress=out.progress, identity={**identity, "qt_helpers": __version__},
                      overwrite=out.overwrite, val_iter=data.val_iter, extend=bool(extend_from),
                      cuda_graph=out.cuda_graph, **({} if board is None else {"on_step": board.step}))
    except Diverged as e:  # never a result: the record says so, with the epochs before
        if out.json:
            write_json(out.json, record(e.history, None, None, time.perf_counter() - t0, diverged=True,
                                        error=str(e)))
            e.args = (f"{e} The record {out.json} is marked diverged.",)
        raise
    train_seconds = time.perf_counter() - t0
    if board:
        board.close(history)
    if spec.test != "epochs":  # never read during training: no per-epoch test numbers at all
        history["test_loss"] = history["test_acc"] = [None] * len(history["epoch"])
    test_loss, test_acc = {"epochs": lambda: (history["test_loss"][-1], history["test_acc"][-1]),
                           "end": lambda: evaluate(net, test_iter), "never": lambda: (None, None)}[spec.test]()
    if test_acc is None:
        print(f"validation accuracy: {history['val_acc'][-1]:.4f} (the test set was not read); "
              f"training took {train_seconds:.1f} s")
    else:
        print(f"test accuracy: {test_acc:.4f} (loss {test_loss:.4f}) on {len(data.y_test):,} images; "
              f"training took {train_seconds:.1f} s")
    if out.export:
        plain = net.export() if hasattr(net, "export") else net
        atomic_write(out.export, lambda f: torch.save(plain.state_dict(), f))
        print(f"exported the CNN's weights to {out.export}")
    result = record(history, test_acc, test_loss, train_seconds)
    if out.json:
        write_json(out.json, result)
        print(f"wrote {out.json}")
    return result


def _started_epochs(checkpoint):
    """The epochs the checkpoint's run started with (an extended run keeps them in its identity), or None."""
    try:
        identity = torch.load(checkpoint, map_location="cpu", weights_only=True)["identity"]
        return identity.get("epochs", identity["num_epochs"])
    except Exception:
        return None
