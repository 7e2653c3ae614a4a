"""One training loop for QT and classical models: Adam, ReduceLROnPlateau, checkpoints, resume."""
from __future__ import annotations

import math
import sys
import time
import warnings
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .data import TensorLoader
from .records import atomic_write

with warnings.catch_warnings():  # without ipywidgets, tqdm.auto falls back to text bars: fine for us
    warnings.simplefilter("ignore")
    from tqdm.auto import tqdm

from .cuda_graph import GraphedStep


def get_device(device: torch.device | str = "auto") -> torch.device:
    """`torch.device` for 'auto' (CUDA if there is one, else CPU), 'cpu', 'cuda', ..."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def set_seed(seed):
    """Seed torch's CPU and CUDA generators."""
    torch.manual_seed(seed)


def accuracy(logits, y):
    """Number of correct predictions in a batch."""
    return (logits.argmax(1) == y).sum().item()


@torch.no_grad()
def evaluate(net: nn.Module, loader: Iterable[tuple[torch.Tensor, torch.Tensor]]) -> tuple[float, float]:
    """(mean loss, accuracy) of `net` over `loader`; a QT model generates its weights once."""
    net.eval()
    if hasattr(net, "export"):  # QT: generate the weights once, not per batch
        net = net.export()
    loss_fn = nn.CrossEntropyLoss(reduction="sum")
    total, correct, n = 0.0, 0, 0
    for x, y in loader:
        logits = net(x)
        total += loss_fn(logits, y).item()
        correct += accuracy(logits, y)
        n += len(y)
    return total / n, correct / n


SCHEDULES = ("plateau", "cosine")


def make_optimizer(net, lr=1e-4, weight_decay=1e-5, eps=1e-6, patience=5, factor=0.5, schedule="plateau",
                   num_epochs=None):
    """Adam with a per-epoch schedule: 'plateau' (the reference: halve the lr when the epoch's mean training
    loss stalls for `patience` epochs) or 'cosine' (decay to 0 over `num_epochs`)."""
    params = [p for p in net.parameters() if p.requires_grad]
    opt = torch.optim.Adam(params, lr=lr, weight_decay=weight_decay, eps=eps)
    if schedule == "plateau":
        sched = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, mode="min", factor=factor, patience=patience)
    elif schedule == "cosine":
        if not num_epochs:
            msg = "the cosine schedule needs num_epochs"
            raise ValueError(msg)
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=num_epochs)
    else:
        msg = f"unknown schedule {schedule!r}; choose one of {', '.join(SCHEDULES)}"
        raise ValueError(msg)
    return opt, sched


class Diverged(FloatingPointError):
    """Training produced a non-finite loss or weights; `history` holds the epochs finished before."""

    def __init__(self, message, history):
        super().__init__(message)
        self.history = history


class CheckpointError(ValueError):
    """A checkpoint that cannot be used: unreadable, of another run, missing, or in the way of a new run."""


def save_checkpoint(path, net, opt, sched, history, identity=None):
    """Write model, optimiser, scheduler, history and the run's identity after an epoch (atomically: a unique
    temporary file in the same folder, then renamed)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    frozen = {k for k, p in net.named_parameters() if not p.requires_grad}  # e.g. QT's CNN template: never changes
    state = {"net": {k: v for k, v in net.state_dict().items() if k not in frozen}, "opt": opt.state_dict(),
             "sched": sched.state_dict(),
             "history": history, "rng": torch.get_rng_state(), "identity": identity}
    atomic_write(path, lambda f: torch.save(state, f))


def load_checkpoint(path, net, opt, sched, identity=None, extend=False):
    """Restore a checkpoint written by `save_checkpoint` and return its history; refuse one of another run
    (`extend`: one whose number of epochs differs is the same run, continued)."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
        saved = state.get("identity")
    except Exception as e:
        msg = (f"checkpoint {path} is unreadable ({type(e).__name__}: {str(e)[:120]}); "
               "delete it to start over, or point to another file")
        raise CheckpointError(msg) from None
    saved = saved or {}
    if extend and identity is not None:
        identity = {**identity, "num_epochs": saved.get("num_epochs")}
    diff = "; ".join(f"{k}: checkpoint {saved.get(k)!r}, this run {identity.get(k)!r}"  # a key one side lacks
                     for k in sorted(set(saved) | set(identity or {})) if saved.get(k) != (identity or {}).get(k))
    if identity is not None and diff:  # counts as None: identities may gain keys without breaking old checkpoints
        msg = (f"checkpoint {path} belongs to another run ({diff}); use another checkpoint file, "
               "or delete this one to start over")
        raise CheckpointError(msg)
    try:
        missing, unexpected = net.load_state_dict(state["net"], strict=False)
        frozen = {k for k, p in net.named_parameters() if not p.requires_grad}
        if unexpected or set(missing) - frozen:
            msg = f"missing {sorted(set(missing) - frozen)[:3]}, unexpected {sorted(unexpected)[:3]}"
            raise KeyError(msg)
        opt.load_state_dict(state["opt"])
        sched.load_state_dict(state["sched"])
    except (KeyError, RuntimeError, ValueError) as e:
        msg = f"checkpoint {path} does not fit this model ({str(e)[:160]})"
        raise CheckpointError(msg) from None
    torch.set_rng_state(state["rng"])
    return state["history"]


def checkpoint_epochs(path):
    """How many epochs the checkpoint at `path` holds (None if it cannot be read: `fit` then says why)."""
    try:
        return len(torch.load(path, map_location="cpu", weights_only=True)["history"]["epoch"])
    except Exception:
        return None


def check_fit_args(num_epochs, lr, checkpoint=None, resume=False, overwrite=False):
    """Raise ValueError (CheckpointError for checkpoints) for arguments `fit` cannot use, before any work."""
    if isinstance(num_epochs, bool) or not isinstance(num_epochs, int) or num_epochs < 1:
        msg = f"num_epochs must be a whole number >= 1, got {num_epochs!r}"
        raise ValueError(msg)
    if not (isinstance(lr, (int, float)) and math.isfinite(lr) and lr > 0):
        msg = f"the learning rate must be a positive number, got {lr!r}"
        raise ValueError(msg)
    if resume and not checkpoint:
        msg = "resume needs a checkpoint file to continue from"
        raise CheckpointError(msg)
    if checkpoint and resume and not Path(checkpoint).is_file():
        msg = (f"cannot resume: checkpoint {checkpoint} does not exist (check the path, or start "
               "the run without resuming)")
        raise CheckpointError(msg)
    if checkpoint and not resume and not overwrite and Path(checkpoint).exists():
        msg = (f"checkpoint {checkpoint} already exists; resume it, or overwrite it explicitly "
               "(CLI: --resume or --overwrite)")
        raise CheckpointError(msg)


def fit(net: nn.Module, train_iter: TensorLoader, test_iter: Iterable[tuple[torch.Tensor, torch.Tensor]] | None = None,
        num_epochs: int = 1, lr: float = 1e-4, weight_decay: float = 1e-5, eps: float = 1e-6, patience: int = 5,
        schedule: str = "plateau", device: torch.device | str = "auto", checkpoint: Path | str | None = None,
        resume: bool = False, progress: bool = True, on_step: Callable[[int, int, float], object] | None = None,
        identity: dict[str, Any] | None = None, overwrite: bool = False, log_epochs: bool = True,
        val_iter: TensorLoader | None = None, extend: bool = False, cuda_graph: bool = False) -> dict[str, list]:
    """Train `net` with cross-entropy; returns the history (a dict of per-epoch lists). Chapter 1 explains it.

    `schedule`: 'plateau' (the reference) or 'cosine' (see `make_optimizer`).
    `checkpoint`: a file written after every epoch; with `resume=True` training continues after the last
    finished epoch in it, and only if it was written by the same run: `identity` (a dict) plus the epochs,
    learning rate and schedule. An existing checkpoint is never overwritten unless `overwrite=True`.
    `on_step(epoch, step, loss)` is called after each optimiser step (for logging or tests); `log_epochs`
    prints one line per epoch (the chapters show curves instead). With `val_iter`, the history also holds
    the validation loss and accuracy of every epoch (choices are made on those, never on the test set).
    `extend=True` with `resume` continues a finished run of fewer epochs to `num_epochs` (a cosine decay starts
    again from the lr a run of `num_epochs` has at that epoch).
    `cuda_graph=True` (a CUDA device only) replays each step from one captured CUDA graph (`GraphedStep`).
    """
    check_fit_args(num_epochs, lr, checkpoint, resume, overwrite)
    identity = {**(identity or {}), "num_epochs": num_epochs, "lr": lr, "schedule": schedule,
                "validation": None if val_iter is None else len(val_iter.x),
                "weight_decay": weight_decay, "batch_size": getattr(train_iter, "batch_size", None)}
    device = get_device(device)
    if cuda_graph and device.type != "cuda":
        msg = f"cuda_graph=True needs a CUDA device, not {device}; leave it off on a CPU"
        raise ValueError(msg)
    net.to(device)
    opt, sched = make_optimizer(net, lr, weight_decay, eps, patience, schedule=schedule, num_epochs=num_epochs)
    keys = ("epoch", "train_loss", "train_acc", "test_loss", "test_acc", "lr", "seconds")
    history = {k: [] for k in keys + (("val_loss", "val_acc") if val_iter is not None else ())}
    if resume:
        history = load_checkpoint(checkpoint, net, opt, sched, identity, extend=extend)
        if extend and schedule == "cosine":  # from the lr a run of num_epochs has here, decaying to 0 again
            done = len(history["epoch"])
            for group in opt.param_groups:
                group["lr"] = group["initial_lr"] * (1 + math.cos(math.pi * done / num_epochs)) / 2
            sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=num_epochs - done)
    start = len(history["epoch"])
    train_iter.epoch = start  # the shuffle of epoch e depends on e alone, so a resumed run matches
    loss_fn = nn.CrossEntropyLoss()
    graphed = GraphedStep(net, loss_fn, opt) if cuda_graph else None
    for epoch in range(start, num_epochs):
        net.train()
        t0, total, correct, n = time.perf_counter(), 0.0, 0, 0
        bar = tqdm(train_iter, desc=f"epoch {epoch + 1}/{num_epochs}", disable=not progress, leave=False)
        for step, (xb, yb) in enumerate(bar):
            x, y = xb.to(device), yb.to(device)
            if graphed:  # the whole step replayed; a non-finite loss is seen after its update
                logits, loss = graphed(x, y)
            else:
                logits = net(x)
                loss = loss_fn(logits, y)
            value = loss.item()  # one device sync per step, shared by the NaN check and the bookkeeping
            if not math.isfinite(value):
                msg = (f"the loss became {value} at epoch {epoch + 1}, step {step + 1}: training diverged "
                       f"and stopped. Try a smaller learning rate (lr={float(opt.param_groups[0]['lr']):g}) "
                       "or check the inputs.")
                raise Diverged(msg, history)
            if not graphed:
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
            total += value * len(y)
            correct += accuracy(logits.detach(), y)
            n += len(y)
            bar.set_postfix(loss=f"{total / n:.4f}", acc=f"{correct / n:.3f}")
            if on_step:
                on_step(epoch, step, value)
        sched.step(total / n) if schedule == "plateau" else sched.step()
        test_loss, test_acc = evaluate(net, test_iter) if test_iter is not None else (math.nan, math.nan)
        for k, v in zip(keys, (epoch + 1, total / n, correct / n, test_loss, test_acc,
                               float(opt.param_groups[0]["lr"]), time.perf_counter() - t0), strict=True):
            history[k].append(v)
        if val_iter is not None:
            for k, v in zip(("val_loss", "val_acc"), evaluate(net, val_iter), strict=True):
                history[k].append(v)
        bad = [k for k, it in (("test_loss", test_iter), ("val_loss", val_iter))
               if it is not None and not math.isfinite(history[k][-1])]
        if bad or not all(torch.isfinite(p).all() for p in net.parameters() if p.requires_grad):
            done = {k: v[:-1] for k, v in history.items()}  # the epoch that diverged is not a result
            what = f"the {' and '.join(k.replace('_', ' ') for k in bad)}" if bad else "the weights"
            msg = (f"training diverged in epoch {epoch + 1}: {what} became non-finite. Try a smaller "
                   f"learning rate (lr={opt.param_groups[0]['lr']:g}).")
            raise Diverged(msg, done)
        if log_epochs:
            scores = [f"{name} acc {history[k][-1]:.4f}" for name, k in (("val", "val_acc"), ("test", "test_acc"))
                      if k in history and not math.isnan(history[k][-1])]
            tqdm.write(f"epoch {epoch + 1}/{num_epochs}: train loss {total / n:.4f}, train acc {correct / n:.4f}, "
                       + ", ".join([*scores, f"{history['seconds'][-1]:.1f} s"]), file=sys.stdout)
        if checkpoint:
            save_checkpoint(checkpoint, net, opt, sched, history, identity)
    return history
