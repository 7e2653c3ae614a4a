"""Figures for the book: training curves, probabilities, generated weights, comparisons."""
from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import matplotlib.pyplot as plt
import torch
from matplotlib.figure import Figure

# One colour per model (and per QNN backend) across the book; a label is matched by its longest known prefix.
COLORS = {"QT reference": "C0", "original recipe": "C0", "QT improved": "C1", "improved recipe": "C1",
          "QT lr-cosine": "C4", "QT chosen": "C5", "classical CNN": "C3", "classical CNN, QT's budget": "C2",
          "budget CNN": "C2", "classical generator": "teal", "low-rank CNN": "darkgoldenrod",
          "frozen random circuit": "tab:gray", "mapping model alone": "black",
          "torchquantum": "C9", "gatewise": "C6", "native": "C7", "pennylane": "C8"}  # the QNN backends (chapter 6)
LABELS = {"train_loss": "training loss", "test_acc": "test accuracy", "test_loss": "test loss",
          "train_acc": "training accuracy", "lr": "learning rate"}


def model_color(label: str) -> str | None:
    """The book's colour for the model a label names (None for a model without one)."""
    keys = [k for k in COLORS if label.startswith(k)]
    return COLORS[max(keys, key=len)] if keys else None


def plot_history(histories: Mapping[str, Mapping[str, Sequence[float]]],
                 metrics: Sequence[str] = ("train_loss", "test_acc"),
                 figsize: tuple[float, float] = (10, 3.5)) -> Figure:
    """Curves of `metrics` per epoch, one line per labelled history (the book's colour per model; runs of one
    model at several sizes get dashed and dotted lines)."""
    fig, axes = plt.subplots(1, len(metrics), figsize=figsize, squeeze=False)
    for ax, metric in zip(axes[0], metrics, strict=True):
        seen = {}
        for label, h in histories.items():
            color = model_color(label)
            style = ("-", "--", ":", "-.")[seen.get(color, 0) % 4] if color else "-"
            seen[color] = seen.get(color, 0) + 1
            ax.plot(h["epoch"], h[metric], style, color=color, marker="o" if len(h["epoch"]) < 20 else None,
                    ms=3, label=label)
        ax.set_xlabel("epoch")
        ax.set_ylabel(LABELS.get(metric, metric.replace("_", " ")))
        if "loss" in metric:
            ax.set_yscale("log")
        ax.grid(alpha=0.3)
    axes[0][-1].legend()
    fig.tight_layout()
    return fig


def plot_probabilities(p: torch.Tensor | Sequence[float], m: int | None = None,
                       figsize: tuple[float, float] = (10, 3)) -> Figure:
    """The 2^n basis-state probabilities, with the first `m` (the ones used) marked."""
    p = torch.as_tensor(p).detach().cpu()
    fig, ax = plt.subplots(figsize=figsize)
    ax.plot(p.numpy(), lw=0.6)
    if m is not None:
        ax.axvline(m, color="C3", ls="--", label=f"M = {m:,}: later states unused")
        ax.legend(loc="upper right")
    ax.set_xlabel("basis state index")
    ax.set_ylabel("probability")
    ax.set_yscale("log")
    fig.tight_layout()
    return fig


def plot_weights(weights: Mapping[str, torch.Tensor], cols: int = 4) -> Figure:
    """Histogram of each generated weight tensor (a dict name -> tensor), `cols` panels per row."""
    rows = -(-len(weights) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(10, 2.4 * rows), squeeze=False)
    for ax, (name, w) in zip(axes.flat, weights.items(), strict=False):  # a last row's spare panels
        ax.hist(w.detach().cpu().flatten().numpy(), bins=40, color=COLORS["QT reference"])
        ax.set_title(f"{name} ({w.numel():,})", fontsize=9)
        ax.set_xlabel("weight value", fontsize=8)
        ax.set_ylabel("count", fontsize=8)
        ax.tick_params(labelsize=7)
    for ax in list(axes.flat)[len(weights):]:
        ax.set_visible(False)
    fig.tight_layout()
    return fig


def plot_pipeline() -> Figure:
    """Chapter 1's picture of Quantum-Train: from angles to the CNN's weights, and the gradient back."""
    from matplotlib.patches import FancyArrowPatch, FancyBboxPatch

    steps = [("QNN angles θ\n(L blocks · 6n)", "C0"), ("circuit on n qubits\n|ψ(θ)⟩", "C0"),
             ("probabilities\np = |ψ|², 2ⁿ", "C0"), ("mapping model\n(bits, x(p)) → weight", "C1"),
             ("first M outputs\n= CNN weights", "C1"), ("classical CNN\nimages → loss", "C3")]
    fig, ax = plt.subplots(figsize=(11, 2.6))
    w, gap = 1.55, 0.35
    for i, (label, color) in enumerate(steps):
        x = i * (w + gap)
        ax.add_patch(FancyBboxPatch((x, 0.9), w, 0.9, boxstyle="round,pad=0.04", fc=color, alpha=0.18, ec=color))
        ax.text(x + w / 2, 1.35, label, ha="center", va="center", fontsize=9)
        if i:
            ax.add_patch(FancyArrowPatch((x - gap, 1.35), (x, 1.35), arrowstyle="-|>", mutation_scale=12))
    end = len(steps) * (w + gap) - gap
    ax.add_patch(FancyArrowPatch((end - w / 2, 0.85), (w / 2, 0.85), connectionstyle="arc3,rad=-0.12",
                                 arrowstyle="-|>", mutation_scale=12, ls="--", color="0.35"))
    ax.text(end / 2, 0.05, "backpropagation: the loss's gradient trains θ and the mapping model only",
            ha="center", fontsize=9, color="0.25")
    ax.text(end / 2, 2.05, "quantum part (simulated exactly)" + " " * 40 + "classical part", ha="center",
            fontsize=8, color="0.4")
    ax.set_xlim(-0.1, end + 0.1)
    ax.set_ylim(-0.1, 2.2)
    ax.axis("off")
    fig.tight_layout()
    return fig


def plot_bars(values: Mapping[str, float], ylabel: str, reference: Mapping[str, float] | None = None,
              figsize: tuple[float, float] = (8, 3.5)) -> Figure:
    """Bars of named values in the book's model colours, each labelled, on an axis zoomed to the values (its
    label says where it starts when not at 0), with optional reference values beside them (chapter 2)."""
    fig, ax = plt.subplots(figsize=figsize)
    names = list(values)
    x = torch.arange(len(names)).numpy()
    width = 0.4 if reference else 0.8
    bars = ax.bar(x - (width / 2 if reference else 0), [values[k] for k in names], width, label="this book",
                  color=[model_color(k) or "C7" for k in names])
    ax.bar_label(bars, fmt="%.2f", padding=2, fontsize=8)
    shown = [values[k] for k in names]
    if reference:
        ref = [reference.get(k, float("nan")) for k in names]
        ax.bar_label(ax.bar(x + width / 2, ref, width, label="published", color="0.75"), fmt="%.2f", padding=2,
                     fontsize=8)
        shown += [v for v in ref if not math.isnan(v)]
        ax.legend()
    low, high = min(shown), max(shown)
    bottom = max(0.0, low - 0.15 * (high - low) - 1)
    ax.set_ylim(bottom, high + 0.15 * (high - low) + 1)
    ax.set_xticks(x, names, rotation=12)
    ax.set_ylabel(ylabel if bottom == 0 else f"{ylabel}\n(axis from {bottom:.0f}, not 0)")
    fig.tight_layout()
    return fig
