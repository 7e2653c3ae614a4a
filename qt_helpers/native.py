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
import torch

from . import circuits as c
from .circuits import complex_dtype, get_ansatz


def window_plan(n, window):
    """Windows (start, width) of equal width covering wires 0..n-1; neighbours share at least one wire."""
    if window < 2:
        raise ValueError("window must be at least 2 wires")
    width = min(window, n)
    starts = list(range(0, n - width, width - 1)) + [n - width]
    return [(s, width) for s in starts]


def _apply_local(mats, cols, a, g, w):
    """Apply gates `mats` (B, 2^g, 2^g) on local wires [a, a+g) of column states (B, 2^w, C)."""
    B, _, C = cols.shape
    v = cols.reshape(B, 2**a, 2**g, 2 ** (w - a - g) * C)
    return torch.einsum("lij,lajb->laib", mats, v).reshape(B, 2**w, C)


def fuse(g1, chain, plan):
    """Window matrices (L, windows, 2^w, 2^w): each window's new one-qubit gates, then its new chain gates.

    A window applies only the gates no earlier window applied (the wire it shares with
    its left neighbour already got its one-qubit gate); the others become identities,
    so all windows of all blocks are built together in 2w - 1 batched products.
    """
    L, n = g1.shape[:2]
    width = plan[0][1]
    starts = torch.tensor([s for s, _ in plan], device=g1.device)
    done = torch.cat([starts.new_tensor([-1]), starts[:-1] + width - 1])  # last wire of the previous window
    wires = starts[:, None] + torch.arange(width, device=g1.device)  # (windows, width)
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
# States are stacks (B, 2^n): one state forward, the state and its gradient backward.
def _apply_window(m, psi, start, width, n):
    """Apply a 2^w × 2^w matrix on wires [start, start+width) of states (B, 2^n)."""
    rest = 2 ** (n - start - width)
    if rest == 1:
        return (psi.view(-1, 2**width) @ m.mT).reshape(psi.shape)
    return (m @ psi.view(-1, 2**width, rest)).reshape(psi.shape)


def _grad_window(g, psi, start, width, n):
    """d(loss)/d(m) for one window: Σ g ψ^H over the other wires."""
    shape = (2**start, 2**width, 2 ** (n - start - width))
    g, psi = g.view(shape), psi.view(shape)
    if shape[0] <= shape[2]:  # few long slices: one batched product, then a small sum
        return torch.bmm(g, psi.mH).sum(0)
    return torch.einsum("aib,ajb->ij", g, psi.conj())


def _close_view(psi, n):
    """States (B, 2^n) as (B, 4, 2^(n-2)) with rows indexed by (wire n-1, wire 0)."""
    return psi.view(-1, 2, 2 ** (n - 2), 2).permute(0, 3, 1, 2).reshape(-1, 4, 2 ** (n - 2))


def _apply_close(m, psi, n):
    """Apply a 4×4 gate in (control=n-1, target=0) order."""
    out = (m @ _close_view(psi, n)).view(-1, 2, 2, 2 ** (n - 2))
    return out.permute(0, 2, 3, 1).reshape(psi.shape)


def _ops(mats, plan):
    """The circuit in order: (block, window index or None for the closing gate, start, width)."""
    ops = []
    for b in range(mats[0].shape[0]):
        ops += [(b, i, start, width) for i, (start, width) in enumerate(plan)]
        if len(mats) > 1:
            ops.append((b, None, 0, 0))
    return ops


def _apply(op, mats, psi, n, adjoint=False):
    """Apply one op (or its inverse) to states (B, 2^n)."""
    b, i, start, width = op
    m = mats[1][b] if i is None else mats[0][b, i]
    m = m.mH if adjoint else m
    if i is None:
        return _apply_close(m, psi, n)
    return _apply_window(m, psi, start, width, n)


class _Simulate(torch.autograd.Function):
    """Final state of a fused circuit, with an adjoint-method backward pass."""

    @staticmethod
    def forward(ctx, psi0, plan, n, *mats):
        psi = psi0[None]
        for op in _ops(mats, plan):
            psi = _apply(op, mats, psi, n)
        ctx.save_for_backward(psi, *mats)
        ctx.plan, ctx.n = plan, n
        return psi[0]

    @staticmethod
    def backward(ctx, g):
        psi, *mats = ctx.saved_tensors
        n = ctx.n
        grads = [torch.zeros_like(m) for m in mats]
        both = torch.cat([psi, g[None]])  # undo each op on the state and its gradient together
        for op in reversed(_ops(mats, ctx.plan)):
            before = _apply(op, mats, both, n, adjoint=True)
            b, i, start, width = op
            if i is None:
                grads[1][b] = _close_view(both[1], n)[0] @ _close_view(before[0], n)[0].mH
            else:
                grads[0][b, i] = _grad_window(both[1], before[0], start, width, n)
            both = before
        return (None, None, None, *grads)


def initial_state(n, plus, dtype, device=None):
    """|0...0> or |+...+> as a flat state vector."""
    if plus:
        return torch.full((2**n,), 2 ** (-n / 2), dtype=dtype, device=device)
    psi = torch.zeros(2**n, dtype=dtype, device=device)
    psi[0] = 1
    return psi


def default_window(n):
    """Window width that balanced launches against arithmetic in our CPU/GPU measurements."""
    return min(n, 4)


def simulate(angles, n, ansatz="u3cu3", window=None, adjoint=True):
    """Final state vector (2^n,) of `ansatz` with `angles` (n_blocks, angles_per_block)."""
    a = get_ansatz(ansatz)
    g1, chain, close = a.matrices(angles, n)
    plan = window_plan(n, window or default_window(n))
    mats = [fuse(g1, chain, plan)] + ([close] if close is not None else [])
    psi0 = initial_state(n, a.plus, g1.dtype, angles.device)
    if adjoint:
        return _Simulate.apply(psi0, plan, n, *mats)
    psi = psi0[None]
    for op in _ops(mats, plan):
        psi = _apply(op, mats, psi, n)
    return psi[0]


def probabilities(angles, n, ansatz="u3cu3", window=None, adjoint=True):
    """Basis-state probabilities |ψ|² (2^n,) of the circuit."""
    psi = simulate(angles, n, ansatz, window, adjoint)
    return torch.view_as_real(psi).square().sum(-1) if psi.is_complex() else psi.square()


def _gate_matrix(name, params):
    """One gate's matrix from its name and angles (the gate list's vocabulary)."""
    if name == "u3":
        return c.u3(params[0], params[1], params[2])
    if name == "cu3":
        return c.controlled(c.u3(params[0], params[1], params[2]))
    if name in ("ry", "rz"):
        return getattr(c, name)(params[0]).to(complex_dtype(params.dtype))
    return c.fixed_gate(name, complex_dtype(params.dtype), params.device)


def simulate_gatewise(angles, n, ansatz="u3cu3"):
    """Final state, one gate at a time on a (2,)*n tensor: the plain-torch baseline."""
    a = get_ansatz(ansatz)
    cdtype = complex_dtype(angles.dtype)
    psi = initial_state(n, a.plus, cdtype, angles.device).view((2,) * n)
    for b in range(angles.shape[0]):
        for name, wires, first, count in a.gates(b, n):
            m = _gate_matrix(name, angles[b, first:first + count]).to(cdtype)
            k = len(wires)
            psi = torch.tensordot(m.view((2,) * 2 * k), psi, dims=(list(range(k, 2 * k)), list(wires)))
            psi = torch.movedim(psi, list(range(k)), list(wires))
    return psi.reshape(-1)
