"""The QNN: trainable angles of a layered ansatz, run by one of three backends.

Every backend holds the same `angles` parameter (n_blocks, angles_per_block) and
returns the 2^n basis-state probabilities, so the same angles give the same
probabilities whichever backend runs them:

- `native`: our fused state-vector simulator (`qt_helpers.native`), the default;
- `torchquantum`: TorchQuantum's own gates on a `tq.QuantumDevice`, as the
  original Quantum-Train examples ran;
- `pennylane`: a PennyLane QNode on `default.qubit` with torch backprop.
TorchQuantum and PennyLane are imported only when their backend is used.
"""
from __future__ import annotations

from typing import Any

import torch
from torch import nn

from . import native
from .circuits import get_ansatz

BACKENDS = ("native", "torchquantum", "pennylane")
INSTALL = {  # pip commands for the optional backends (TorchQuantum's own metadata pulls packages it never imports)
    "torchquantum": "pip install 'qt-helpers[torchquantum]' && pip install --no-deps torchquantum==0.1.8 "
                    "torchpack==0.3.1  (Python 3.10 to 3.12: qiskit-aer 0.14 has no wheel for 3.13)",
    "pennylane": "pip install 'qt-helpers[pennylane]'",
}


class QNN(nn.Module):
    """Angles of a layered ansatz on `n_qubits` wires; `forward()` gives probabilities (2^n,)."""

    backend = None

    def __init__(self, n_qubits, n_blocks, ansatz="u3cu3", seed=None, init=None):
        super().__init__()
        if n_qubits < 2:
            msg = f"a QNN needs at least 2 qubits, got {n_qubits}"
            raise ValueError(msg)
        if n_blocks < 1:
            msg = f"a QNN needs at least 1 block, got {n_blocks}"
            raise ValueError(msg)
        self.n_qubits, self.n_blocks, self.ansatz = n_qubits, n_blocks, get_ansatz(ansatz)
        gen = None if seed is None else torch.Generator().manual_seed(seed)
        self.angles = nn.Parameter(self.ansatz.init(n_blocks, n_qubits, gen, init))

    def extra_repr(self):
        return f"backend={self.backend}, ansatz={self.ansatz.name}, n_qubits={self.n_qubits}, n_blocks={self.n_blocks}"


class NativeQNN(QNN):
    """QNN run by the fused native simulator (adjoint-method gradients)."""

    backend = "native"

    def __init__(self, n_qubits, n_blocks, ansatz="u3cu3", seed=None, init=None, window=None):
        super().__init__(n_qubits, n_blocks, ansatz, seed, init)
        self.window = window

    def forward(self):
        return native.probabilities(self.angles, self.n_qubits, self.ansatz.name, self.window)


class TorchQuantumQNN(QNN):
    """QNN run gate by gate by TorchQuantum (batch size 1 state vector)."""

    backend = "torchquantum"

    def __init__(self, n_qubits, n_blocks, ansatz="u3cu3", seed=None, init=None):
        super().__init__(n_qubits, n_blocks, ansatz, seed, init)
        _import("torchquantum")  # fail early, with a hint, if it is missing

    def forward(self):
        tq, tqf = _import("torchquantum"), _import("torchquantum.functional")
        n, a = self.n_qubits, self.angles
        qdev = tq.QuantumDevice(n_wires=n, bsz=1, device=a.device)
        if self.ansatz.plus:
            for w in range(n):
                tqf.hadamard(qdev, wires=w)
        for b in range(self.n_blocks):
            for name, wires, first, count in self.ansatz.gates(b, n):
                targets = list(wires) if len(wires) > 1 else wires[0]
                params = a[b, first:first + count].unsqueeze(0) if count else None
                getattr(tqf, name)(qdev, wires=targets, params=params)
        return qdev.get_states_1d()[0].abs().square()


class PennyLaneQNN(QNN):
    """QNN as a PennyLane QNode on `default.qubit`, differentiated by torch backprop."""

    backend = "pennylane"

    def __init__(self, n_qubits, n_blocks, ansatz="u3cu3", seed=None, init=None, device_name="default.qubit"):
        super().__init__(n_qubits, n_blocks, ansatz, seed, init)
        qml = _import("pennylane")
        dev = qml.device(device_name, wires=n_qubits)
        self.circuit = qml.QNode(self._circuit, dev, interface="torch", diff_method="backprop")

    def _circuit(self, angles):
        qml, n = _import("pennylane"), self.n_qubits
        gates = {"u3": qml.U3, "ry": qml.RY, "rz": qml.RZ, "cnot": qml.CNOT, "cz": qml.CZ}
        if self.ansatz.plus:
            for w in range(n):
                qml.Hadamard(w)
        for b in range(self.n_blocks):
            for name, wires, first, count in self.ansatz.gates(b, n):
                if name == "cu3":
                    qml.ctrl(qml.U3, control=wires[0])(*angles[b, first:first + count], wires=wires[1])
                else:
                    gates[name](*angles[b, first:first + count], wires=list(wires))
        return qml.probs(wires=range(n))

    def forward(self):
        return self.circuit(self.angles).to(self.angles.dtype)


_QNNS = {"native": NativeQNN, "torchquantum": TorchQuantumQNN, "pennylane": PennyLaneQNN}


def check_backend(backend):
    """`backend` if it is known, else a ValueError listing the valid ones."""
    if backend not in _QNNS:
        msg = f"unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}"
        raise ValueError(msg)
    return backend


def available(backend: str) -> bool:
    """True when `backend`'s quantum library imports here (chapters skip their cross-checks otherwise)."""
    try:
        _import({"native": "torch", "torchquantum": "torchquantum", "pennylane": "pennylane"}[check_backend(backend)])
    except ImportError:
        return False
    return True


def make_qnn(backend: str, n_qubits: int, n_blocks: int, ansatz: str = "u3cu3", seed: int | None = None,
             **options: Any) -> QNN:
    """A QNN of `backend` ('native', 'torchquantum' or 'pennylane')."""
    return _QNNS[check_backend(backend)](n_qubits, n_blocks, ansatz, seed, **options)


def _import(module):
    """Import an optional quantum library with an install hint if it is missing."""
    import importlib
    import warnings

    try:
        with warnings.catch_warnings():  # qiskit 0.46 / pkg_resources deprecation notices, not ours to fix
            warnings.simplefilter("ignore")
            return importlib.import_module(module)
    except ImportError as e:
        name = module.split(".")[0]
        hint = INSTALL.get(name, f"pip install {name}")
        msg = f"backend needs {name!r} ({e}); install it with `{hint}`, or use backend='native'"
        raise ImportError(msg) from e
