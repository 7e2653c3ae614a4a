"""One training loop for QT and classical models: Adam, ReduceLROnPlateau, checkpoints, resume."""
import math
import platform
import sys
import time
import warnings
from pathlib import Path

import torch
from torch import nn

with warnings.catch_warnings():  # without ipywidgets, tqdm.auto falls back to text bars: fine for us
    warnings.simplefilter("ignore")
    from tqdm.auto import tqdm


def get_device(device="auto"):
    """`torch.device` for 'auto' (CUDA if there is one, else CPU), 'cpu', 'cuda', ..."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def device_name(device):
    """A readable name of the device: the GPU's, or the CPU's architecture and torch's thread count."""
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"{platform.processor() or platform.machine()} CPU ({torch.get_num_threads()} threads)"


def set_seed(seed):
    """Seed torch's CPU and CUDA generators."""
    torch.manual_seed(seed)


def accuracy(logits, y):
    """Number of correct predictions in a batch."""
    return (logits.argmax(1) == y).sum().item()


@torch.no_grad()
def evaluate(net, loader):
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
            raise ValueError("the cosine schedule needs num_epochs")
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=num_epochs)
    else:
        raise ValueError(f"unknown schedule {schedule!r}; choose one of {', '.join(SCHEDULES)}")
    return opt, sched


def save_checkpoint(path, net, opt, sched, history):
    """Write model, optimiser, scheduler and history after an epoch (atomically)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {"net": net.state_dict(), "opt": opt.state_dict(), "sched": sched.state_dict(),
             "history": history, "rng": torch.get_rng_state()}
    tmp = path.with_suffix(".tmp")
    torch.save(state, tmp)
    tmp.replace(path)


def load_checkpoint(path, net, opt, sched):
    """Restore a checkpoint written by `save_checkpoint`; returns its history."""
    state = torch.load(path, map_location="cpu", weights_only=True)
    net.load_state_dict(state["net"])
    opt.load_state_dict(state["opt"])
    sched.load_state_dict(state["sched"])
    torch.set_rng_state(state["rng"])
    return state["history"]


def fit(net, train_loader, test_loader=None, num_epochs=1, lr=1e-4, weight_decay=1e-5, eps=1e-6,
        patience=5, schedule="plateau", device="auto", checkpoint=None, resume=False, progress=True,
        on_step=None):
    """Train `net` with cross-entropy; returns the history (a dict of per-epoch lists).

    `schedule`: 'plateau' (the reference) or 'cosine' (see `make_optimizer`).
    `checkpoint`: a file written after every epoch; with `resume=True` training
    continues after the last finished epoch in it. `on_step(epoch, step, loss)` is
    called after each optimiser step (for logging or tests).
    """
    device = get_device(device)
    net.to(device)
    opt, sched = make_optimizer(net, lr, weight_decay, eps, patience, schedule=schedule, num_epochs=num_epochs)
    history = {k: [] for k in ("epoch", "train_loss", "train_acc", "test_loss", "test_acc", "lr", "seconds")}
    if resume and checkpoint and Path(checkpoint).exists():
        history = load_checkpoint(checkpoint, net, opt, sched)
    start = len(history["epoch"])
    train_loader.epoch = start  # the shuffle of epoch e depends on e alone, so a resumed run matches
    loss_fn = nn.CrossEntropyLoss()
    for epoch in range(start, num_epochs):
        net.train()
        t0, total, correct, n = time.perf_counter(), 0.0, 0, 0
        bar = tqdm(train_loader, desc=f"epoch {epoch + 1}/{num_epochs}", disable=not progress, leave=False)
        for step, (x, y) in enumerate(bar):
            x, y = x.to(device), y.to(device)
            logits = net(x)
            loss = loss_fn(logits, y)
            value = loss.item()  # one device sync per step, shared by the NaN check and the bookkeeping
            if not math.isfinite(value):
                raise FloatingPointError(
                    f"the loss became {value} at epoch {epoch + 1}, step {step + 1}: training stopped. "
                    f"Try a smaller learning rate (lr={opt.param_groups[0]['lr']:g}) or check the inputs.")
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
        test_loss, test_acc = evaluate(net, test_loader) if test_loader is not None else (math.nan, math.nan)
        for k, v in zip(history, (epoch + 1, total / n, correct / n, test_loss, test_acc,
                                  opt.param_groups[0]["lr"], time.perf_counter() - t0)):
            history[k].append(v)
        tqdm.write(f"epoch {epoch + 1}/{num_epochs}: train loss {total / n:.4f}, train acc {correct / n:.4f}, "
                   f"test acc {test_acc:.4f} ({history['seconds'][-1]:.1f} s)", file=sys.stdout)
        if checkpoint:
            save_checkpoint(checkpoint, net, opt, sched, history)
    return history
