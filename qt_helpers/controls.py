"""Controls of Quantum-Train at equal budget: does the quantum circuit matter? (chapter 7)

Each control changes one thing of the QT model built by `qt_model` and keeps the rest (CNN, transform, mapping model,
seed, training recipe):

- `frozen-circuit`: the QNN's angles stay at their initial values (`requires_grad` False); only the mapping model
  (and the transform/scales where the recipe trains them) learns;
- `classical-generator`: the QNN is replaced by `ClassicalGenerator`, a softmax over a one-hidden-layer MLP of the
  ±1 bitstrings, as wide as makes its trainable parameters those of the QNN (QT's total within ±2 %); its
  probability vector over the same 2^n basis states goes through the same transform and mapping model;
- `mapping-only`: the QNN is replaced by constant uniform probabilities (after the transform's mean is subtracted,
  the mapping model sees the bitstrings alone);
- `low-rank-cnn`: a classical compression baseline at QT's budget, `LowRankCNN`: the full-width reference CNN with
  every weight matrix trained as a product U·V of low rank (biases trained as they are), ranks chosen to land
  within ±2 % of QT's trainable parameters. Chosen over a hypernetwork-generated CNN because it is the textbook
  compression baseline with no design choices of its own (a hypernetwork is itself a generator, which the
  classical-generator control already is), and it compresses the very CNN that QT generates, at full width.

    net = control_model("classical-generator", "mnist", 16, seed=42)
    param_table(net)["trainable_params"]                           # 1,495: QT has 1,497
"""
from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import nn
from torch.func import functional_call

from .models import cnn, num_params
from .qt import QTModel, bitstrings, qt_model

CONTROLS = ("frozen-circuit", "classical-generator", "mapping-only", "low-rank-cnn")
VARIANTS = ("qt", *CONTROLS)  # QT itself is variant 1 of the control table


def trainable_params(net: nn.Module) -> int:
    """Number of trainable parameters of `net` (those the optimiser updates)."""
    return num_params(net, trainable=True)


class ClassicalGenerator(nn.Module):
    """Trainable probabilities over the 2^n basis states: softmax over an MLP (n → hidden, tanh → 1) of the ±1
    bitstrings; (n + 2)·hidden + 1 parameters."""

    def __init__(self, n_qubits: int, hidden: int) -> None:
        super().__init__()
        self.n_qubits, self.hidden = n_qubits, hidden
        self.register_buffer("bits", bitstrings(n_qubits), persistent=False)
        self.mlp = nn.Sequential(nn.Linear(n_qubits, hidden), nn.Tanh(), nn.Linear(hidden, 1))

    def forward(self) -> torch.Tensor:
        return torch.softmax(self.mlp(self.bits).squeeze(-1), 0)


def generator_width(n_qubits: int, target: int) -> int:
    """The hidden width whose `ClassicalGenerator` has the nearest number of parameters to `target`."""
    return max(1, round((target - 1) / (n_qubits + 2)))


class UniformProbabilities(nn.Module):
    """Constant uniform probabilities 1/2^n over the 2^n basis states: nothing to train."""

    def __init__(self, n_qubits: int) -> None:
        super().__init__()
        self.n_qubits = n_qubits
        self.register_buffer("p", torch.full((2**n_qubits,), 2.0**-n_qubits), persistent=False)

    def forward(self) -> torch.Tensor:
        return self.p


def low_rank_ranks(shapes: Sequence[torch.Size], budget: int) -> list[int]:
    """Ranks of the weight matrices (out, in) of `shapes` so that Σ rank·(out + in) + biases lands within ±2 % of
    `budget`, at most it where it can: one rank for all first, then the remainder filled layer by layer."""
    mats = [(s[0], s[1:].numel()) for s in shapes if len(s) > 1]
    fixed = sum(s.numel() for s in shapes if len(s) == 1)
    cost = [o + i for o, i in mats]
    cap = [min(o, i) for o, i in mats]
    if fixed + sum(cost) > budget:
        msg = f"a low-rank CNN of rank 1 has {fixed + sum(cost):,} parameters, more than {budget:,}"
        raise ValueError(msg)
    ranks = [1] * len(mats)
    total = lambda: fixed + sum(r * c for r, c in zip(ranks, cost, strict=True))  # noqa: E731
    while True:  # raise every rank while all fit
        step = [j for j in range(len(mats)) if ranks[j] < cap[j]]
        if not step or total() + sum(cost[j] for j in step) > budget:
            break
        for j in step:
            ranks[j] += 1
    while True:  # then the largest single steps that still fit
        fits = [j for j in range(len(mats)) if ranks[j] < cap[j] and total() + cost[j] <= budget]
        if not fits:
            break
        ranks[max(fits, key=lambda j: cost[j])] += 1
    over = [j for j in range(len(mats)) if ranks[j] < cap[j]]
    if over and total() < 0.98 * budget:  # more than 2 % below: one more step if it lands closer
        j = min(over, key=lambda j: cost[j])
        if total() + cost[j] - budget < budget - total():
            ranks[j] += 1
    return ranks


class LowRankCNN(nn.Module):
    """The reference CNN with each weight matrix W (out × in·k·k) trained as U·V of a low rank; the biases are
    trained as they are. Like QT, it generates the CNN's weights and calls the CNN with them; `export()` gives a
    plain CNN."""

    def __init__(self, net: nn.Module, budget: int, seed: int | None = None) -> None:
        super().__init__()
        self.net = net.requires_grad_(False)  # a template, as in QTModel
        self.m = num_params(net, trainable=False)
        self.shapes = {k: p.shape for k, p in net.named_parameters()}
        self.ranks = low_rank_ranks(list(self.shapes.values()), budget)
        with torch.random.fork_rng(devices=[]):
            if seed is not None:
                torch.manual_seed(seed)
            self.factors, self.biases = nn.ParameterDict(), nn.ParameterDict()
            ranks = iter(self.ranks)
            for k, s in self.shapes.items():
                key = k.replace(".", "_")
                if len(s) == 1:  # the template's own initial bias
                    self.biases[key] = nn.Parameter(dict(net.named_parameters())[k].detach().clone())
                    continue
                r, n_in = next(ranks), s[1:].numel()  # var(U·V) = 1/(3·fan-in), as torch's default init
                self.factors[key + "_u"] = nn.Parameter(torch.randn(s[0], r) / r**0.5)
                self.factors[key + "_v"] = nn.Parameter(torch.randn(r, n_in) / (3 * n_in) ** 0.5)

    def weights(self) -> dict[str, torch.Tensor]:
        """The CNN's named parameters, generated from the factors."""
        out = {}
        for k, s in self.shapes.items():
            key = k.replace(".", "_")
            out[k] = self.biases[key] if len(s) == 1 else (
                self.factors[key + "_u"] @ self.factors[key + "_v"]).view(s)
        return out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return functional_call(self.net, self.weights(), (x,))

    @torch.no_grad()
    def export(self) -> nn.Module:
        """A plain copy of the CNN holding the generated weights."""
        net = copy.deepcopy(self.net).requires_grad_(True)
        net.load_state_dict({k: v.detach().clone() for k, v in self.weights().items()})
        return net


def control_model(variant: str, dataset: str, n_blocks: int = 16, backend: str = "native", ansatz: str = "u3cu3",
                  preset: str = "reference", relu: bool = False, seed: int | None = None,
                  **options: Any) -> QTModel | LowRankCNN:
    """The model of control `variant` (one of `VARIANTS`) for QT `qt_model(dataset, n_blocks, ...)` (chapter 7)."""
    if variant not in VARIANTS:
        msg = f"unknown control {variant!r}; choose one of {', '.join(VARIANTS)}"
        raise ValueError(msg)
    net = qt_model(dataset, n_blocks, backend, ansatz, preset, relu=relu, seed=seed, **options)
    if variant == "frozen-circuit":
        net.qnn.requires_grad_(False)
    elif variant == "classical-generator":
        with torch.random.fork_rng(devices=[]):
            if seed is not None:
                torch.manual_seed(seed)
            net.qnn = ClassicalGenerator(net.n_qubits, generator_width(net.n_qubits, trainable_params(net.qnn)))
    elif variant == "mapping-only":
        net.qnn = UniformProbabilities(net.n_qubits)
    elif variant == "low-rank-cnn":
        net = LowRankCNN(cnn(dataset, relu=relu), trainable_params(net), seed)
    net.control = variant
    return net


def param_table(net: QTModel | LowRankCNN, budget: int | None = None) -> dict[str, Any]:
    """The parameter counts of a control (or QT) model: CNN weights, the probability source's trainable and frozen
    parameters, the mapping model's, the trainable total (also as `qt_params`, the records' "trained parameters")
    and, given QT's `budget`, the total against it."""
    total = trainable_params(net)
    row = {"control": getattr(net, "control", "qt"), "cnn_params": net.m, "trainable_params": total,
           "qt_params": total, "ratio": total / net.m, "budget": budget,
           "vs_budget": None if budget is None else total / budget - 1}
    if isinstance(net, LowRankCNN):
        return {**row, "qubits": None, "blocks": None, "ranks": net.ranks, "generator": None,
                "generator_params": None, "frozen_params": 0, "mapping_params": None}
    source = {ClassicalGenerator: "classical MLP", UniformProbabilities: "uniform"}.get(type(net.qnn), "QNN")
    return {**row, "qubits": net.n_qubits, "blocks": getattr(net.qnn, "n_blocks", None), "ranks": None,
            "generator": source, "generator_params": trainable_params(net.qnn),
            "frozen_params": num_params(net.qnn, trainable=False) - trainable_params(net.qnn),
            "mapping_params": trainable_params(net.mapping)}


def param_rows(info: Mapping[str, Any]) -> list[tuple[str, Any]]:
    """(name, value) rows of a `param_table` for printing."""
    rows = [("control", info["control"]), ("CNN parameters (generated)", f"{info['cnn_params']:,}")]
    if info["ranks"] is not None:
        rows.append(("ranks of the weight matrices", " ".join(map(str, info["ranks"]))))
    else:
        rows += [("qubits", info["qubits"]), (f"{info['generator']} parameters trained",
                                              f"{info['generator_params']:,}"),
                 (f"{info['generator']} parameters frozen", f"{info['frozen_params']:,}"),
                 ("mapping-model parameters", f"{info['mapping_params']:,}")]
    rows.append(("trainable parameters", f"{info['trainable_params']:,}"))
    if info["budget"] is not None:
        rows.append(("against QT's", f"{info['budget']:,} ({info['vs_budget']:+.2%})"))
    return rows


def control_table(dataset: str, n_blocks: int = 16, seed: int = 42,
                  **options: Any) -> list[tuple[str, int, float]]:
    """[(variant, trainable parameters, against QT's)] of every variant for `dataset` at `n_blocks`."""
    qt = trainable_params(qt_model(dataset, n_blocks, seed=seed, **options))
    return [(v, n, n / qt - 1) for v in VARIANTS
            for n in [trainable_params(control_model(v, dataset, n_blocks, seed=seed, **options))]]
