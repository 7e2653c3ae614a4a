"""The classical target networks of Quantum-Train, as ordinary `nn.Module`s."""
from __future__ import annotations

import itertools
import math

import torch
from torch import nn
from torch.nn.utils import parametrize

from .data import info


class MnistCNN(nn.Module):
    """The MNIST/FashionMNIST CNN of the original examples (6,690 parameters)."""

    def __init__(self, relu: bool = False, width: tuple[int, int, int] = (8, 12, 20)) -> None:
        super().__init__()
        c1, c2, h = width
        act = nn.ReLU if relu else nn.Identity
        self.features = nn.Sequential(
            nn.Conv2d(1, c1, 5), act(), nn.MaxPool2d(2),
            nn.Conv2d(c1, c2, 5), act(), nn.MaxPool2d(2), nn.Flatten())
        self.classifier = nn.Sequential(nn.Linear(c2 * 16, h), act(), nn.Linear(h, 10))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))


class CifarCNN(nn.Module):
    """The CIFAR-10 CNN of the original examples (285,226 parameters)."""

    def __init__(self, relu: bool = False, width: tuple[int, int, int, int] = (16, 32, 128, 64)) -> None:
        super().__init__()
        c1, c2, h1, h2 = width
        act = nn.ReLU if relu else nn.Identity
        self.features = nn.Sequential(
            nn.Conv2d(3, c1, 5, padding=2), act(), nn.MaxPool2d(2),
            nn.Conv2d(c1, c2, 5, padding=2), act(), nn.MaxPool2d(2), nn.Flatten())
        self.classifier = nn.Sequential(
            nn.Linear(c2 * 64, h1), act(), nn.Linear(h1, h2), act(), nn.Linear(h2, 10))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))


def cnn(dataset: str, relu: bool = False, width: tuple[int, ...] | None = None) -> MnistCNN | CifarCNN:
    """The reference CNN for `dataset` (optionally with ReLUs or other widths)."""
    kind = {"MnistCNN": MnistCNN, "CifarCNN": CifarCNN}[info(dataset).cnn]
    return kind(relu=relu) if width is None else kind(relu=relu, width=width)


def budget_cnn(dataset: str, budget: int, relu: bool = False, standardize: bool = False) -> MnistCNN | CifarCNN:
    """The reference CNN made narrower to `budget` parameters (chapter 7): the widths of a uniform narrowing, each
    nudged by up to 2 so that the count lands within 1 % below `budget` (else 2 % below, else 2 % above, else as
    close as widths allow: tiny budgets), the shape nearest the uniform one; `standardize`: as QT's `--standardize`."""
    ref = (16, 32, 128, 64) if info(dataset).cnn == "CifarCNN" else (8, 12, 20)

    def build(width):
        net = cnn(dataset, relu, width)
        return standardize_weights(net) if standardize else net

    def size(width):
        with torch.device("meta"):  # counts only: no memory, no initialisation
            net = cnn(dataset, relu, width)
        return num_params(net) + (len(list(net.parameters())) if standardize else 0)  # + one scale per tensor

    if size((1,) * len(ref)) > budget:
        msg = f"no {dataset} CNN of this shape fits in {budget:,} parameters"
        raise ValueError(msg)
    lo, hi = 0.0, 1.0
    for _ in range(30):  # bisect the uniform width scale
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if size(tuple(max(1, round(mid * w)) for w in ref)) <= budget else (lo, mid)
    base = [max(1, round(lo * w)) for w in ref]
    scale = max(lo, 1 / min(ref))

    def key(width):  # at most the budget and within 1 %, else 2 %, else over by 2 % at most: the shape nearest
        n = size(width)  # the uniform one; else the closest count
        gap = (budget - n) / budget
        tier = 0 if 0 <= gap <= 0.01 else 1 if 0 <= gap <= 0.02 else 2 if -0.02 <= gap < 0 else 3
        shape = sum(abs(math.log(w / (scale * r))) for w, r in zip(width, ref, strict=True))
        return (tier, round(shape, 6) if tier < 3 else 0, abs(budget - n))

    best = min(itertools.product(*(range(max(1, w - 2), w + 3) for w in base)), key=key)
    return build(best)


def standardize(rows):
    """Rows centred and scaled to unit variance (weight standardisation, one row per output unit; chapter 5)."""
    return (rows - rows.mean(1, keepdim=True)) / rows.std(1, keepdim=True).clamp_min(1e-12)


class Standardized(nn.Module):
    """Weight standardisation of one tensor (per output unit; a bias is one unit) times a trained scale."""

    def __init__(self, fan_in):
        super().__init__()
        self.scale = nn.Parameter(torch.tensor(float(fan_in) ** -0.5))

    def forward(self, w):
        return (standardize(w.view(w.shape[0] if w.dim() > 1 else 1, -1)) * self.scale).view_as(w)


def standardize_weights(net):
    """`net` with every weight and bias standardised as QT's `--standardize` does it (one trained scale per
    tensor, starting at 1/sqrt(fan-in)), through `torch.nn.utils.parametrize`."""
    for module in net.modules():
        if isinstance(module, (nn.Conv2d, nn.Linear)):
            fan_in = module.weight[0].numel()
            for name in ("weight", "bias"):
                if getattr(module, name, None) is not None:
                    parametrize.register_parametrization(module, name, Standardized(fan_in))
    return net


def num_params(net: nn.Module, trainable: bool = True) -> int:
    """Number of (trainable) parameters of `net`."""
    return sum(p.numel() for p in net.parameters() if p.requires_grad or not trainable)
