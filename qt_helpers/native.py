"""A fast exact state-vector simulator for the layered QT ansätze.

Speed comes from doing each block in a few large operations instead of 2n small
ones: the one-qubit layer and the chain of two-qubit gates are fused into windows
of `window` neighbouring wires (a 2^w × 2^w matrix each, built for all blocks at
once), and every window is one batched matrix product on the state. Circuits
whose gates are all real (RY + CNOT) run in real arithmetic.

The gradient uses the adjoint method: the backward pass walks the circuit in
reverse, undoing each (unitary) window on the state instead of storing it, so
memory stays at a few state vectors whatever the depth.
"""
import functools

import torch

from . import circuits as c
from .circuits import complex_dtype, get_ansatz


def window_plan(n, window):
    """Windows (start, width) of equal width covering wires 0..n-1; neighbours share at least one wire."""
    if window < 2:
        msg = "window must be at least 2 wires"
        raise ValueError(msg)
    width = min(window, n)
    starts = [*range(0, n - width, width - 1), n - width]
    return [(s, width) for s in starts]


def _apply_local(mats, cols, a, g, w):
    """Apply gates `mats` (B, 2^g, 2^g) on local wires [a, a+g) of column states (B, 2^w, C)."""
    B, _, C = cols.shape
    v = cols.reshape(B, 2**a, 2**g, 2 ** (w - a - g) * C)
    return torch.einsum("lij,lajb->laib", mats, v).reshape(B, 2**w, C)


@functools.cache
def _plan_index(plan, device):
    """(done, wires) of a window plan, made once per device: the last wire each window's left neighbour
    covers (windows,), and each window's wires (windows, width). (No host-to-device copy per step, which
    also lets a CUDA graph capture the step.)"""
    width = plan[0][1]
    starts = torch.tensor([s for s, _ in plan], device=device)
    done = torch.cat([starts.new_tensor([-1]), starts[:-1] + width - 1])
    return done, starts[:, None] + torch.arange(width, device=device)


def fuse(g1, chain, plan):
    """Window matrices (L, windows, 2^w, 2^w): each window's new one-qubit gates, then its new chain gates.

    A window applies only the gates no earlier window applied (the wire it shares with
    its left neighbour already got its one-qubit gate); the others become identities,
    so all windows of all blocks are built together in 2w - 1 batched products.
    """
    L, n = g1.shape[:2]
    width = plan[0][1]
    done, wires = _plan_index(tuple(plan), g1.device)
    eye2, eye4 = torch.eye(2, dtype=g1.dtype, device=g1.device), torch.eye(4, dtype=g1.dtype, device=g1.device)
    ones = torch.where((wires > done[:, None])[..., None, None], g1[:, wires], eye2)  # (L, windows, w, 2, 2)
    edges = wires[:, :-1]
    twos = torch.where((edges >= done[:, None])[..., None, None], chain[:, edges.clamp(max=n - 2)], eye4)
    B = L * len(plan)
    m = torch.eye(2**width, dtype=g1.dtype, device=g1.device).expand(B, -1, -1)
    for j in range(width):
        m = _apply_local(ones[:, :, j].reshape(B, 2, 2), m, j, 1, width)
    for j in range(width - 1):
        m = _apply_local(twos[:, :, j].reshape(B, 4, 4), m, j, 2, width)
    return m.view(L, len(plan), 2**width, 2**width)


# --------------------------------------------------------------- state operations
# States are stacks (B, 2^n): one state forward, the state and its gradient backward. Every operation is one
# matrix product on a view of the stack, written into a spare buffer (`out`) or in place: no permuted copies.
def _shape(x, start, width, n):
    """(K, D, R): states (B, 2^n) seen as (B·2^start, 2^width, 2^(n-start-width)), window wires in the middle."""
    return x.shape[0] * 2**start, 2**width, 2 ** (n - start - width)


def _apply_window(m, x, start, width, n, out=None):
    """Apply a 2^w × 2^w matrix on wires [start, start+width) of states (B, 2^n), into `out` if given."""
    K, D, R = _shape(x, start, width, n)
    if R == 1:  # the last wires: one product with rows of D amplitudes
        y = torch.mm(x.view(K, D), m.T, out=None if out is None else out.view(K, D))
    elif K == 1:  # the first wires of a single state: one product with D rows
        y = torch.mm(m, x.view(D, R), out=None if out is None else out.view(D, R))
    else:
        y = torch.bmm(m.expand(K, D, D), x.view(K, D, R), out=None if out is None else out.view(K, D, R))
    return y.view(x.shape)


def _grad_window(g, psi, start, width, n):
    """Σ g ψ^H over the wires outside the window: d(loss)/d(m*) of a window from the state before it (ψ)
    and the gradient after it (g), each one state (2^n,)."""
    K, D, R = _shape(g[None], start, width, n)
    if R == 1:
        return (psi.view(K, D).mH @ g.view(K, D)).T
    if K == 1:
        return g.view(D, R) @ psi.view(D, R).mH
    if R < D:  # many small blocks: one product over permuted copies beats K tiny ones
        return torch.tensordot(g.view(K, D, R), psi.view(K, D, R).conj(), dims=([0, 2], [0, 2]))
    return torch.bmm(g.view(K, D, R), psi.view(K, D, R).mH).sum(0)


def _controlled_part(x, n):
    """The amplitudes of states (B, 2^n) whose wire n-1 is 1, as a view (B, 2, 2^(n-2)) indexed by wire 0."""
    return x.view(-1, 2, 2 ** (n - 2), 2)[..., 1]


def _apply_close(u, x, n, inplace=True):
    """The closing gate, U on wire 0 controlled by wire n-1, applied to states (B, 2^n) (in place)."""
    if inplace:
        v = _controlled_part(x, n)
        v.copy_(u @ v)
        return x
    v = x.view(-1, 2, 2 ** (n - 2), 2)  # out of place, for autograd
    return torch.stack([v[..., 0], u @ v[..., 1]], -1).view(x.shape)


def _grad_close(g, psi, n):
    """d(loss)/d(U*) of the closing gate: Σ g ψ^H over the amplitudes it acts on (each one state (2^n,))."""
    return _controlled_part(g, n)[0] @ _controlled_part(psi, n)[0].mH


def _forward(psi, wins, close, plan, n, inplace):
    """Run the circuit on states (B, 2^n): per block its windows, then its closing gate."""
    spare = torch.empty_like(psi) if inplace else None
    for b in range(wins.shape[0]):
        for (start, width), m in zip(plan, wins[b], strict=True):
            y = _apply_window(m, psi, start, width, n, out=spare)
            psi, spare = y, (psi if inplace else None)
        if close is not None:
            psi = _apply_close(close[b], psi, n, inplace)
    return psi


class _Simulate(torch.autograd.Function):
    """Final state of a fused circuit, with an adjoint-method backward pass.

    The circuit is ψ_L = U_k ··· U_1 ψ_0 and the loss depends on ψ_L alone. With g_k = ∂loss/∂ψ_k* (torch's
    convention for complex tensors), the chain rule through ψ_k = U_k ψ_(k-1) gives
        g_(k-1) = U_k^H g_k   and   ∂loss/∂U_k* = g_k ψ_(k-1)^H.
    Unitarity gives ψ_(k-1) = U_k^H ψ_k too, so walking back from (ψ_L, g_L) needs no stored states: each
    step undoes one operation on the stack [ψ; g] (a product on two states) and reduces g_k ψ_(k-1)^H over the
    wires the operation does not touch (one more): three state-sized products per operation backward, against
    one forward, so a gradient costs at least four forward passes. Chapter 6 measures it.
    """

    @staticmethod
    def forward(ctx, psi0, plan, n, wins, close):
        psi = _forward(psi0[None].clone(), wins, close, plan, n, inplace=True)
        ctx.save_for_backward(psi, wins, close)
        ctx.plan, ctx.n = plan, n
        return psi[0]

    @staticmethod
    def backward(ctx, g):
        psi, wins, close = ctx.saved_tensors
        plan, n = ctx.plan, ctx.n
        both, spare = torch.cat([psi, g.reshape(1, -1)]), torch.empty(2, psi.shape[1], dtype=psi.dtype,
                                                                        device=psi.device)
        grad_wins = torch.zeros_like(wins)
        grad_close = None if close is None else torch.zeros_like(close)
        wins_h = wins.mH.contiguous()  # the inverses, made once
        close_h = None if close is None else close.mH.contiguous()
        for b in reversed(range(wins.shape[0])):
            if close is not None:  # g_k ψ_(k-1)^H = (g_k ψ_k^H) U: take it before undoing ψ and g together
                grad_close[b] = _grad_close(both[1], both[0], n) @ close[b]
                _apply_close(close_h[b], both, n)
            for i in reversed(range(len(plan))):
                start, width = plan[i]
                _apply_window(wins_h[b, i], both, start, width, n, out=spare)
                grad_wins[b, i] = _grad_window(both[1], spare[0], start, width, n)
                both, spare = spare, both
        return None, None, None, grad_wins, grad_close


def initial_state(n, plus, dtype, device=None):
    """|0...0> or |+...+> as a flat state vector."""
    if plus:
        return torch.full((2**n,), 2 ** (-n / 2), dtype=dtype, device=device)
    psi = torch.zeros(2**n, dtype=dtype, device=device)
    psi[:1].fill_(1)  # not `psi[0] = 1`: that copies a host scalar, which a CUDA graph cannot capture
    return psi


def default_window(n):
    """Window width that balanced launches against arithmetic in our CPU/GPU measurements."""
    return min(n, 4)


def simulate(angles, n, ansatz="u3cu3", window=None, adjoint=True):
    """Final state vector (2^n,) of `ansatz` with `angles` (n_blocks, angles_per_block)."""
    a = get_ansatz(ansatz)
    g1, chain, close = a.matrices(angles, n)
    plan = window_plan(n, window or default_window(n))
    wins = fuse(g1, chain, plan)
    psi0 = initial_state(n, a.plus, g1.dtype, angles.device)
    if adjoint:
        return _Simulate.apply(psi0, plan, n, wins, close)
    return _forward(psi0[None], wins, close, plan, n, inplace=False)[0]


def probabilities(angles, n, ansatz="u3cu3", window=None, adjoint=True):
    """Basis-state probabilities |ψ|² (2^n,) of the circuit."""
    psi = simulate(angles, n, ansatz, window, adjoint)
    return torch.view_as_real(psi).square().sum(-1) if psi.is_complex() else psi.square()


def gate_matrix(name, params):
    """One gate's matrix from its name and angles (the gate list's vocabulary; chapter 1 uses it)."""
    if name == "u3":
        return c.u3(params[0], params[1], params[2])
    if name == "cu3":
        return c.controlled(c.u3(params[0], params[1], params[2]))
    if name in ("ry", "rz"):
        return getattr(c, name)(params[0]).to(complex_dtype(params.dtype))
    return c.fixed_gate(name, complex_dtype(params.dtype), params.device)


# The plain-torch baseline, gate by gate on a (2,)*n tensor: chapter 1 writes it (and chapter 6 times it against
# the fused engine above).
# >>> #@save cells of notebooks/01_concept.ipynb, written by tools/save_code.py: edit them there, not here
def apply_gate(psi, gate, wires):
    """`gate` (2^k × 2^k) on `wires` of a state tensor (2,)*n (chapter 1)"""
    k = len(wires)
    psi = torch.tensordot(gate.reshape((2,) * 2 * k), psi,
                          dims=(list(range(k, 2 * k)), list(wires)))
    return torch.movedim(psi, list(range(k)), list(wires))


def simulate_gatewise(angles, n, ansatz="u3cu3"):
    """Final state (2^n,) of `ansatz` with `angles` (L, angles per block),
    gate by gate (chapter 1)."""
    a = get_ansatz(ansatz)
    dtype = complex_dtype(angles.dtype)
    psi = initial_state(n, a.plus, dtype, angles.device).view((2,) * n)
    for b in range(angles.shape[0]):
        for name, wires, first, count in a.gates(b, n):
            gate = gate_matrix(name, angles[b, first:first + count])
            psi = apply_gate(psi, gate.to(dtype), wires)
    return psi.reshape(-1)
# <<< end of the #@save cells of notebooks/01_concept.ipynb
