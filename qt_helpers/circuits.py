"""The layered QNN ansätze of Quantum-Train, described once for every backend.

A circuit is `n_blocks` blocks on `n` wires. Every block is a layer of one-qubit
gates (one per wire), a chain of two-qubit gates on (k, k+1) for k = 0..n-2 and,
for ring ansätze, a closing gate on (n-1, 0). Wire 0 is the most significant bit
of a basis-state index, as in TorchQuantum and PennyLane.

Each ansatz gives (i) a gate list that the TorchQuantum and PennyLane backends
replay, and (ii) the same gates as batched matrices for the native simulator.
"""
from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import torch

ANSATZE = ("u3cu3", "ry_cnot", "ry_rz_cz")
INITS = ("uniform", "small")  # U(-π, π) as TorchQuantum; 0.01·randn as the PennyLane example


# ----------------------------------------------------------------- gate matrices
def complex_dtype(dtype):
    """The complex dtype matching a real one (float32 -> complex64, float64 -> complex128)."""
    return torch.promote_types(dtype, torch.complex64)


def u3(theta, phi, lam):
    """U3 matrices (..., 2, 2) for angle tensors of equal shape."""
    c, s = torch.cos(theta / 2), torch.sin(theta / 2)
    e_phi, e_lam = torch.polar(torch.ones_like(phi), phi), torch.polar(torch.ones_like(lam), lam)
    row0 = torch.stack([c.to(e_phi.dtype), -e_lam * s], -1)
    row1 = torch.stack([e_phi * s, e_phi * e_lam * c], -1)
    return torch.stack([row0, row1], -2)


def ry(theta):
    """RY matrices (..., 2, 2), real."""
    c, s = torch.cos(theta / 2), torch.sin(theta / 2)
    return torch.stack([torch.stack([c, -s], -1), torch.stack([s, c], -1)], -2)


def rz(theta):
    """RZ matrices (..., 2, 2): diag(e^{-iθ/2}, e^{iθ/2})."""
    e = torch.polar(torch.ones_like(theta), theta / 2)
    z = torch.zeros_like(e)
    return torch.stack([torch.stack([e.conj(), z], -1), torch.stack([z, e], -1)], -2)


def controlled(u):
    """Controlled-U (..., 4, 4) in (control, target) order from U (..., 2, 2)."""
    out = torch.zeros(*u.shape[:-2], 4, 4, dtype=u.dtype, device=u.device)
    out[..., :2, :2].diagonal(dim1=-2, dim2=-1).fill_(1)  # fill_, not `= 1`: no host-to-device copy per step
    out[..., 2:, 2:] = u
    return out


TARGETS = {"cnot": [[0.0, 1.0], [1.0, 0.0]], "cz": [[1.0, 0.0], [0.0, -1.0]]}  # CNOT = controlled-X, CZ = controlled-Z


def target_gate(name, dtype=torch.float32, device=None):
    """The 2×2 target matrix of the constant controlled gates CNOT (X) and CZ (Z)."""
    if name not in TARGETS:
        msg = f"unknown fixed gate {name!r}"
        raise ValueError(msg)
    return _constant(name, dtype, torch.device(device or "cpu"))


@functools.cache
def _constant(name, dtype, device):
    """A target matrix made once per dtype and device (read-only: callers expand or multiply it)."""
    return torch.tensor(TARGETS[name], dtype=dtype, device=device)


def fixed_gate(name, dtype=torch.float32, device=None):
    """The constant two-qubit gates CNOT and CZ as 4×4 matrices."""
    return controlled(target_gate(name, dtype, device))


# ----------------------------------------------------------------------- ansätze
@dataclass(frozen=True)
class Ansatz:
    """A layered ansatz: its name, angles per block and the gates it applies."""

    name: str
    one_q: str  # "u3", "ry" or "ry|rz" (alternating by block)
    two_q: str  # "cu3", "cnot" or "cz"
    ring: bool  # closing gate on (n-1, 0)
    plus: bool  # start from |+>^n (Hadamard on every wire) instead of |0>^n

    def angles_per_block(self, n):
        """Number of trainable angles in one block on `n` wires."""
        per_1q = 3 if self.one_q == "u3" else 1
        per_2q = 3 if self.two_q == "cu3" else 0
        return per_1q * n + per_2q * (n if self.ring else n - 1)

    def init(self, n_blocks, n, generator=None, scheme=None):
        """Initial angles (n_blocks, angles_per_block): `scheme` from INITS, or None for the originals' choice
        (0.01·randn for the PennyLane example's ansatz, U(-π, π) for the others)."""
        shape = (n_blocks, self.angles_per_block(n))
        scheme = scheme or ("small" if self.name == "ry_rz_cz" else "uniform")
        if scheme == "small":
            return 0.01 * torch.randn(shape, generator=generator)
        if scheme == "uniform":
            return (torch.rand(shape, generator=generator) * 2 - 1) * math.pi
        msg = f"unknown init {scheme!r}; choose one of {', '.join(INITS)}"
        raise ValueError(msg)

    def gates(self, block, n):
        """Gate list of one block: (name, wires, first angle index, number of angles)."""
        one = self.one_q if self.one_q != "ry|rz" else ("ry", "rz")[block % 2]
        k1 = 3 if one == "u3" else 1
        ops = [(one, (w,), k1 * w, k1) for w in range(n)]
        k2 = 3 if self.two_q == "cu3" else 0
        edges = [(w, w + 1) for w in range(n - 1)] + ([(n - 1, 0)] if self.ring else [])
        ops += [(self.two_q, e, k1 * n + k2 * i, k2) for i, e in enumerate(edges)]
        return ops

    def matrices(self, angles, n):
        """All gates as batched matrices: one-qubit (L, n, 2, 2), chain (L, n-1, 4, 4) and the closing gate's
        2×2 target matrix (L, 2, 2), controlled by wire n-1 and acting on wire 0 (None without a ring)."""
        L = angles.shape[0]
        if self.one_q == "u3":
            a = angles[:, : 3 * n].reshape(L, n, 3)
            g1 = u3(a[..., 0], a[..., 1], a[..., 2])
        elif self.one_q == "ry":
            g1 = ry(angles[:, :n])
        else:  # alternating RY / RZ layers
            g1 = torch.where((torch.arange(L, device=angles.device) % 2 == 0)[:, None, None, None],
                             ry(angles[:, :n]).to(complex_dtype(angles.dtype)), rz(angles[:, :n]))
        if self.two_q == "cu3":  # every two-qubit gate is controlled: t holds the targets' 2×2 matrices
            b = angles[:, 3 * n:].reshape(L, -1, 3)
            t = u3(b[..., 0], b[..., 1], b[..., 2])
        else:
            t = target_gate(self.two_q, g1.dtype, angles.device).expand(L, n if self.ring else n - 1, 2, 2)
        return g1, controlled(t[:, : n - 1]), (t[:, n - 1] if self.ring else None)


_ANSATZE = {
    "u3cu3": Ansatz("u3cu3", "u3", "cu3", ring=True, plus=False),
    "ry_cnot": Ansatz("ry_cnot", "ry", "cnot", ring=True, plus=False),
    "ry_rz_cz": Ansatz("ry_rz_cz", "ry|rz", "cz", ring=False, plus=True),
}


def get_ansatz(name: str) -> Ansatz:
    """The ansatz called `name` (see `ANSATZE`)."""
    try:
        return _ANSATZE[name]
    except KeyError:
        msg = f"unknown ansatz {name!r}; choose one of {', '.join(ANSATZE)}"
        raise ValueError(msg) from None


def n_qubits_for(m: int) -> int:
    """Qubits needed to index `m` weights: ceil(log2 m), at least 2."""
    return max(2, math.ceil(math.log2(m)))
