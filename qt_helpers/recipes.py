"""Named training recipes, defined once for the chapters, the CLI and the experiment grids.

A recipe says which model is trained (QT with which mapping-model options, or the classical CNN) and how
(learning rate and schedule). Epochs are not part of it: each chapter's profile and each grid sets them.

    r = qth.RECIPES["improved"]
    net = r.build("cifar10", 95, seed=42)                    # the model (QT here)
    fit(net, train_iter, test_iter, num_epochs, **r.fit_options())
    r.cli_args("cifar10")                                    # the same, as `python -m qt_helpers train` flags
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from torch import nn

from .data import resolve_name

# QT recipes that train the mapping model harder also standardise the generated weights on CIFAR-10: its
# activation-free CNN of 285,226 generated weights diverged without (train loss ~1e7 in the first epoch, L = 19,
# lr 3e-3; chapter 5 shows why). One trained scale per weight tensor: 10 more parameters.
STANDARDIZE_ON = ("cifar10",)


@dataclass(frozen=True)
class Recipe:
    """How one model is built and trained (see the module docstring)."""

    name: str
    summary: str
    model: str = "qt"  # "qt" or "classical"
    activation: str = "none"  # the mapping model's activation (QT)
    standardize_on: tuple[str, ...] = ()  # datasets on which QT standardises its generated weights
    lr: float = 1e-4
    schedule: str = "plateau"

    def options(self, dataset: str) -> dict[str, str | bool]:
        """Keyword options of `qt_model` for `dataset` (empty for the classical CNN)."""
        if self.model != "qt":
            return {}
        out = {} if self.activation == "none" else {"activation": self.activation}
        if resolve_name(dataset) in self.standardize_on:
            out["standardize"] = True
        return out

    def fit_options(self) -> dict[str, float | str]:
        """Keyword options of `fit`: learning rate and schedule."""
        return {"lr": self.lr, "schedule": self.schedule}

    def build(self, dataset: str, n_blocks: int = 16, **kwargs: Any) -> nn.Module:
        """The model this recipe trains on `dataset`: QT with `n_blocks`, or the reference CNN."""
        from .models import cnn
        from .qt import qt_model

        if self.model == "classical":
            return cnn(dataset, relu=kwargs.get("relu", False))
        return qt_model(dataset, n_blocks, **self.options(dataset), **kwargs)

    def cli_args(self, dataset: str) -> list[str]:
        """The recipe as `train` flags (only those that differ from the CLI's defaults for a QT model)."""
        args = ["--model", "classical"] if self.model == "classical" else []
        for key, value in self.options(dataset).items():
            args += [f"--{key}"] if value is True else [f"--{key}", str(value)]
        if self.model == "classical" or self.lr != RECIPES["reference"].lr:
            args += ["--lr", f"{self.lr:g}"]
        if self.schedule != "plateau":
            args += ["--schedule", self.schedule]
        return args


RECIPES = {r.name: r for r in (
    Recipe("reference", "as published: affine mapping model, Adam at lr 1e-4, halved when the loss plateaus"),
    Recipe("lr-cosine", "the published affine mapping model at lr 3e-3 with a cosine decay to 0",
           standardize_on=STANDARDIZE_ON, lr=3e-3, schedule="cosine"),
    Recipe("improved", "a ReLU mapping model at lr 3e-3 with a cosine decay to 0",
           activation="relu", standardize_on=STANDARDIZE_ON, lr=3e-3, schedule="cosine"),
    Recipe("classical", "the CNN's own weights, Adam at lr 1e-3 with a cosine decay to 0",
           model="classical", lr=1e-3, schedule="cosine"),
    Recipe("tuned", "lr-cosine at lr 1e-2, what chapter 7's validation protocol chose for QT on MNIST and "
           "FashionMNIST", standardize_on=STANDARDIZE_ON, lr=1e-2, schedule="cosine"),
)}


def get_recipe(name: str) -> Recipe:
    """The recipe called `name` (see `RECIPES`)."""
    if name not in RECIPES:
        msg = f"unknown recipe {name!r}; choose one of {', '.join(RECIPES)}"
        raise ValueError(msg)
    return RECIPES[name]
