"""The native simulator against a gate-by-gate state vector, and its adjoint gradients."""
import pytest
import torch

from qt_helpers import native
from qt_helpers.circuits import ANSATZE, get_ansatz


def random_angles(ansatz, n_blocks, n, seed=0):
    g = torch.Generator().manual_seed(seed)
    shape = (n_blocks, get_ansatz(ansatz).angles_per_block(n))
    return ((torch.rand(shape, generator=g) * 2 - 1) * torch.pi).double().requires_grad_(True)


def probs_and_grad(probs_fn, angles, weights):
    p = probs_fn(angles)
    (g,) = torch.autograd.grad((p * weights).sum(), angles)
    return p.detach(), g


@pytest.mark.parametrize("ansatz", ANSATZE)
@pytest.mark.parametrize(("n", "n_blocks", "window"), [(2, 3, 2), (3, 2, 2), (5, 3, 3), (6, 2, 4), (7, 3, 5), (8, 2, 8),
                                                 (9, 2, 4), (10, 2, 6)])
def test_fused_matches_gatewise(ansatz, n, n_blocks, window):
    angles = random_angles(ansatz, n_blocks, n, seed=n)
    weights = torch.randn(2**n, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    ref = probs_and_grad(lambda a: torch.view_as_real(native.simulate_gatewise(a, n, ansatz)).square().sum(-1),
                         angles, weights)
    for adjoint in (True, False):
        got = probs_and_grad(lambda a, adjoint=adjoint: native.probabilities(a, n, ansatz, window, adjoint),
                             angles, weights)
        torch.testing.assert_close(got[0], ref[0], atol=1e-12, rtol=0)
        torch.testing.assert_close(got[1], ref[1], atol=1e-10, rtol=0)


@pytest.mark.parametrize("ansatz", ANSATZE)
def test_probabilities_sum_to_one_in_float32(ansatz):
    a = get_ansatz(ansatz)
    p = native.probabilities(a.init(20, 10), 10, ansatz)
    assert p.dtype == torch.float32
    assert p.shape == (1024,)
    assert abs(p.sum().item() - 1) < 1e-5
    assert p.min() >= 0


def test_real_circuit_runs_in_real_arithmetic():
    a = get_ansatz("ry_cnot")
    assert not native.simulate(a.init(2, 4), 4, "ry_cnot").is_complex()
    assert native.simulate(get_ansatz("u3cu3").init(2, 4), 4, "u3cu3").is_complex()


def test_float32_adjoint_stays_accurate_for_deep_circuits():
    n, n_blocks = 9, 60
    angles = random_angles("u3cu3", n_blocks, n)
    weights = torch.randn(2**n, dtype=torch.float64)
    p64, g64 = probs_and_grad(lambda a: native.probabilities(a, n, "u3cu3"), angles, weights)
    a32 = angles.detach().float().requires_grad_(True)
    p32, g32 = probs_and_grad(lambda a: native.probabilities(a, n, "u3cu3"), a32, weights.float())
    assert (p32.double() - p64).abs().max() < 1e-6
    assert (g32.double() - g64).abs().max() < 1e-4


@pytest.mark.parametrize(("n", "window", "expected"), [(5, 3, [(0, 3), (2, 3)]), (4, 8, [(0, 4)]),
                                                 (13, 4, [(0, 4), (3, 4), (6, 4), (9, 4)]),
                                                 (19, 6, [(0, 6), (5, 6), (10, 6), (13, 6)])])
def test_window_plan_covers_all_wires(n, window, expected):
    plan = native.window_plan(n, window)
    assert plan == expected
    assert {s + j for s, w in plan for j in range(w)} == set(range(n))


def test_window_plan_rejects_tiny_windows():
    with pytest.raises(ValueError, match="at least 2"):
        native.window_plan(5, 1)


def saved_bytes(fn):
    """Bytes autograd keeps for the backward pass of `fn()`."""
    total = [0]

    def pack(t):
        total[0] += t.numel() * t.element_size()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        fn()
    return total[0]


def test_adjoint_memory_stays_at_state_vector_scale():
    """What autograd keeps grows with the state by a few vectors (adjoint), not by one per gate window."""
    n_blocks = 24

    def growth(adjoint):  # saved bytes at 16 qubits minus at 14: the part that scales with the state
        kept = []
        for n in (14, 16):  # both use 5 windows of 4 wires per block
            angles = get_ansatz("u3cu3").init(n_blocks, n).requires_grad_(True)
            kept.append(saved_bytes(
                lambda angles=angles, n=n: native.probabilities(angles, n, "u3cu3", adjoint=adjoint)))
        return kept[1] - kept[0]

    state_growth = (2**16 - 2**14) * 8  # one complex64 state vector
    assert growth(adjoint=True) <= 3 * state_growth
    assert growth(adjoint=False) >= n_blocks * 5 * state_growth
