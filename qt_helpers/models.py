"""The classical target networks of Quantum-Train, as ordinary `nn.Module`s."""
from torch import nn

from .data import resolve_name


class MnistCNN(nn.Module):
    """The MNIST/FashionMNIST CNN of the original examples (6,690 parameters)."""

    def __init__(self, relu=False, width=(8, 12, 20)):
        super().__init__()
        c1, c2, h = width
        act = nn.ReLU if relu else nn.Identity
        self.features = nn.Sequential(
            nn.Conv2d(1, c1, 5), act(), nn.MaxPool2d(2),
            nn.Conv2d(c1, c2, 5), act(), nn.MaxPool2d(2), nn.Flatten())
        self.classifier = nn.Sequential(nn.Linear(c2 * 16, h), act(), nn.Linear(h, 10))

    def forward(self, x):
        return self.classifier(self.features(x))


class CifarCNN(nn.Module):
    """The CIFAR-10 CNN of the original examples (285,226 parameters)."""

    def __init__(self, relu=False, width=(16, 32, 128, 64)):
        super().__init__()
        c1, c2, h1, h2 = width
        act = nn.ReLU if relu else nn.Identity
        self.features = nn.Sequential(
            nn.Conv2d(3, c1, 5, padding=2), act(), nn.MaxPool2d(2),
            nn.Conv2d(c1, c2, 5, padding=2), act(), nn.MaxPool2d(2), nn.Flatten())
        self.classifier = nn.Sequential(
            nn.Linear(c2 * 64, h1), act(), nn.Linear(h1, h2), act(), nn.Linear(h2, 10))

    def forward(self, x):
        return self.classifier(self.features(x))


def cnn(dataset, relu=False, width=None):
    """The reference CNN for `dataset` (optionally with ReLUs or other widths)."""
    kind = CifarCNN if resolve_name(dataset) == "cifar10" else MnistCNN
    return kind(relu=relu) if width is None else kind(relu=relu, width=width)


def budget_cnn(dataset, budget, relu=False):
    """The reference CNN made uniformly narrower until it has at most `budget` parameters."""
    ref = (16, 32, 128, 64) if resolve_name(dataset) == "cifar10" else (8, 12, 20)
    lo, hi = 0.0, 1.0
    for _ in range(30):  # bisect the width scale
        mid = (lo + hi) / 2
        width = tuple(max(1, round(mid * w)) for w in ref)
        lo, hi = (mid, hi) if num_params(cnn(dataset, relu, width)) <= budget else (lo, mid)
    net = cnn(dataset, relu, tuple(max(1, round(lo * w)) for w in ref))
    if num_params(net) > budget:
        raise ValueError(f"no {dataset} CNN of this shape fits in {budget:,} parameters")
    return net


def num_params(net, trainable=True):
    """Number of (trainable) parameters of `net`."""
    return sum(p.numel() for p in net.parameters() if p.requires_grad or not trainable)
