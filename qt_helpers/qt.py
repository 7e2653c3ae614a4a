"""The Quantum-Train model: a QNN and a mapping model generate a CNN's weights.

    probabilities p (2^n) ──first M──▶ x = (β·tanh(γ·2^(n-1)·p))^α − mean
    [±1 bitstring of the basis state, x] ──mapping model──▶ one weight each
    the M weights ──torch.func.functional_call──▶ the ordinary CNN

Only the QNN angles and the mapping model (and, as named options, γ, β, α or one scale per weight tensor) are
trained. With `shots`, p is estimated from that many measurements, a fresh draw for every generation (so also
for `export()`). `export()` turns the generated weights into a plain CNN that needs no quantum library.

The model itself (`transform`, `bitstrings`, `MappingModel`, `QTModel`) is written in view in chapter 1
(notebooks/01_concept.ipynb) and copied here, verbatim, by tools/save_code.py; this file holds the presets and
the options' helpers around it.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass
from itertools import pairwise
from typing import Any

import torch
from torch import nn
from torch.func import functional_call

from .circuits import n_qubits_for
from .data import resolve_name
from .models import cnn, num_params
from .qnn import make_qnn

ACTIVATIONS = {"none": None, "relu": nn.ReLU, "tanh": nn.Tanh, "gelu": nn.GELU, "silu": nn.SiLU}


@dataclass
class Preset:
    """The QT recipe: mapping-model shape, transform and the named improvements."""

    hidden: tuple[int, ...] = (4, 20, 4)
    activation: str = "none"  # between mapping layers; the original has none (an affine map)
    gamma: float = 0.1
    beta: float = 0.8
    alpha: float = 0.3
    trainable_transform: bool = False
    standardize: bool = False  # weight standardisation per output unit, times a trained scale per tensor
    shots: int | None = None  # None: exact probabilities; else estimated from this many measurement shots


PRESETS = {
    "reference": {"mnist": Preset(), "fashion_mnist": Preset(), "cifar10": Preset(hidden=(40, 200, 40))},
}


def get_preset(name: str, dataset: str) -> Preset:
    """The preset `name` for `dataset` (a copy: change fields freely)."""
    if name not in PRESETS:
        msg = f"unknown preset {name!r}; choose one of {', '.join(PRESETS)}"
        raise ValueError(msg)
    return copy.deepcopy(PRESETS[name][resolve_name(dataset)])


def standardize(rows):
    """Rows centred and scaled to unit variance (weight standardisation, one row per output unit)."""
    return (rows - rows.mean(1, keepdim=True)) / rows.std(1, keepdim=True).clamp_min(1e-12)


def sample_counts(p, shots):
    """Counts of `shots` measurements of a state with basis-state probabilities `p` (length 2^n): one exact
    multinomial draw, made qubit by qubit as n rounds of binomial splits, so its cost does not grow with shots."""
    n = p.numel().bit_length() - 1
    p = p.detach().double()
    counts = p.new_full((1,), float(shots))
    for k in range(1, n + 1):  # counts of the first k qubits' outcomes -> of the first k+1
        pairs = p.reshape(2**k, -1).sum(1).view(-1, 2)
        left = torch.binomial(counts, (pairs[:, 0] / pairs.sum(1)).nan_to_num(0.0).clamp(0, 1))
        counts = torch.stack([left, counts - left], 1).flatten()
    return counts


def estimate(p, shots):
    """Shot estimate counts/shots of `p` in the forward pass, with the exact gradient of `p` (straight-through)."""
    return p + (sample_counts(p, shots).to(p.dtype) / shots - p).detach()


def fan_in(name, shapes):
    """Inputs per output unit of the layer that owns parameter `name` (a bias uses its weight's)."""
    shape = shapes[name.rsplit(".", 1)[0] + ".weight"] if name.endswith("bias") else shapes[name]
    return shape[1:].numel()


# The model itself, written in view in chapter 1: the probability transform, the bitstrings, the mapping model
# and `QTModel`, whose methods the chapter adds one cell at a time (`add_to_class`, as in d2l).
# >>> #@save cells of notebooks/01_concept.ipynb, written by tools/save_code.py: edit them there, not here
def transform(p, n, gamma, beta, alpha):
    """x = (β tanh(γ 2^(n-1) p))^α of probabilities `p`, minus its mean
    (chapter 1)."""
    x = beta * torch.tanh(gamma * 2 ** (n - 1) * p)
    x = x.clamp_min(1e-20) ** alpha
    return x - x.mean()


def bitstrings(n, m=None):
    """The first `m` basis states of `n` qubits as ±1 rows (m, n), wire 0
    first (chapter 1)."""
    idx = torch.arange(m if m is not None else 2**n)
    bits = (idx[:, None] >> torch.arange(n - 1, -1, -1)) & 1
    return bits.float() * 2 - 1


class MappingModel(nn.Module):
    """MLP from (n bits ±1, transformed probability) to one weight per
    basis state (chapter 1)."""

    def __init__(self, n_in: int, hidden: tuple[int, ...] = (4, 20, 4),
                 activation: str = "none") -> None:
        super().__init__()
        if activation not in ACTIVATIONS:
            msg = (f"unknown activation {activation!r}; "
                   f"choose one of {', '.join(ACTIVATIONS)}")
            raise ValueError(msg)
        sizes = (n_in, *hidden, 1)
        self.layers = nn.ModuleList(nn.Linear(a, b)
                                    for a, b in pairwise(sizes))
        act = ACTIVATIONS[activation]
        self.act = act() if act else None

    def affine(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(W, b) of the MLP without activations: the layers as one map."""
        w, b = self.layers[0].weight, self.layers[0].bias
        for layer in self.layers[1:]:
            w, b = layer.weight @ w, layer.weight @ b + layer.bias
        return w, b

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.act is None:  # the same function, less arithmetic
            w, b = self.affine()
            return x @ w.T + b
        for layer in self.layers[:-1]:
            x = self.act(layer(x))
        return self.layers[-1](x)


def add_to_class(Class):
    """Make the decorated function a method of `Class` (d2l; chapter 1)."""
    def wrapper(obj):
        setattr(Class, obj.__name__, obj)
    return wrapper


class QTModel(nn.Module):
    """A CNN whose weights come from a QNN and a mapping model
    (chapter 1)."""

    def __init__(self, net: nn.Module, n_blocks: int = 16,
                 backend: str = "native", ansatz: str = "u3cu3",
                 preset: Preset | None = None, n_qubits: int | None = None,
                 seed: int | None = None, **qnn_options: Any) -> None:
        super().__init__()
        preset = preset or Preset()
        self.m = num_params(net, trainable=False)
        n = n_qubits or n_qubits_for(self.m)
        if 2**n < self.m:
            msg = (f"{n} qubits give 2^{n} = {2**n:,} basis states, fewer "
                   f"than the CNN's {self.m:,} weights; use at least "
                   f"{n_qubits_for(self.m)} qubits")
            raise ValueError(msg)
        self.n_qubits, self.preset = n, preset
        self.net = net.requires_grad_(False)  # a template: weights unused
        self.shapes = {k: p.shape for k, p in net.named_parameters()}
        self.qnn = make_qnn(backend, n, n_blocks, ansatz, seed,
                            **qnn_options)
        with torch.random.fork_rng(devices=[]):  # seed the mapping too
            if seed is not None:
                torch.manual_seed(seed)
            self.mapping = MappingModel(n + 1, preset.hidden,
                                        preset.activation)
        t = torch.tensor([preset.gamma, preset.beta, preset.alpha])
        if preset.trainable_transform:
            self.transform = nn.Parameter(t)
        else:
            self.register_buffer("transform", t)
        self.register_buffer("bits", bitstrings(n, self.m),
                             persistent=False)
        if preset.standardize:
            self.scales = nn.Parameter(torch.tensor(
                [fan_in(k, self.shapes) ** -0.5 for k in self.shapes]))


@add_to_class(QTModel)
def features(self) -> torch.Tensor:
    """Mapping-model input (M, n+1): ±1 bitstrings, transformed
    probabilities (chapter 1)."""
    p = self.qnn()
    if self.preset.shots:
        p = estimate(p, self.preset.shots)
    x = transform(p[: self.m], self.n_qubits, *self.transform)
    return torch.cat([self.bits, x[:, None].to(self.bits.dtype)], 1)


@add_to_class(QTModel)
def generate(self) -> torch.Tensor:
    """The M generated weights as one flat vector (chapter 1)."""
    w = self.mapping(self.features()).squeeze(-1)
    return w - w.mean()


@add_to_class(QTModel)
def weights(self) -> dict[str, torch.Tensor]:
    """The generated weights as the CNN's named parameters (chapter 1)."""
    shapes = self.shapes.values()
    chunks = self.generate().split([s.numel() for s in shapes])
    if self.preset.standardize:  # one row per output unit; a bias is one
        units = [s[0] if len(s) > 1 else 1 for s in shapes]
        scaled = zip(chunks, units, self.scales, strict=True)
        chunks = [standardize(c.view(u, -1)) * a for c, u, a in scaled]
    names = self.shapes.keys()
    return {k: c.reshape(s)
            for k, s, c in zip(names, shapes, chunks, strict=True)}


@add_to_class(QTModel)
def forward(self, x: torch.Tensor) -> torch.Tensor:
    return functional_call(self.net, self.weights(), (x,))


@add_to_class(QTModel)
@torch.no_grad()
def export(self) -> nn.Module:
    """A plain copy of the CNN holding the generated weights: no quantum
    library needed (chapter 1)."""
    net = copy.deepcopy(self.net).requires_grad_(True)
    net.load_state_dict({k: v.detach().clone()
                         for k, v in self.weights().items()})
    return net


@add_to_class(QTModel)
def param_table(self) -> dict[str, float]:
    """Parameter counts: CNN, qubits, QNN angles, mapping, QT, ratio
    (chapter 1)."""
    qnn, mapping = num_params(self.qnn), num_params(self.mapping)
    total = num_params(self)
    return {"cnn_params": self.m, "qubits": self.n_qubits,
            "blocks": self.qnn.n_blocks, "qnn_params": qnn,
            "mapping_params": mapping, "qt_params": total,
            "ratio": total / self.m}
# <<< end of the #@save cells of notebooks/01_concept.ipynb


def qt_model(dataset: str, n_blocks: int = 16, backend: str = "native", ansatz: str = "u3cu3",
             preset: str = "reference", relu: bool = False, seed: int | None = None, **options: Any) -> QTModel:
    """The QT model for `dataset`'s reference CNN; `options` override preset fields or go to the QNN."""
    p = get_preset(preset, dataset)
    qnn_options = {k: v for k, v in options.items() if not hasattr(p, k)}
    for k, v in options.items():
        if hasattr(p, k):
            setattr(p, k, v)
    return QTModel(cnn(dataset, relu=relu), n_blocks, backend, ansatz, p, seed=seed, **qnn_options)
