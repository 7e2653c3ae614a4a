"""TorchQuantum, PennyLane and the native simulator agree on probabilities and gradients."""
import pytest
import torch

from qt_helpers import make_qnn, qt_model
from qt_helpers.circuits import ANSATZE


def run(backend, ansatz, n, n_blocks, angles, weights):
    qnn = make_qnn(backend, n, n_blocks, ansatz)
    with torch.no_grad():
        qnn.angles.copy_(angles)
    p = qnn()
    (grad,) = torch.autograd.grad((p * weights).sum(), qnn.angles)
    return p.detach().double(), grad.double()


def random_case(ansatz, n, n_blocks, seed):
    g = torch.Generator().manual_seed(seed)
    angles = make_qnn("native", n, n_blocks, ansatz).angles.detach()
    angles = (torch.rand(angles.shape, generator=g) * 2 - 1) * torch.pi
    return angles, torch.randn(2**n, generator=g)


@pytest.mark.parametrize(("n", "n_blocks"), [(3, 2), (5, 3)])
def test_torchquantum_and_pennylane_agree_on_the_reference_circuit(n, n_blocks):
    angles, weights = random_case("u3cu3", n, n_blocks, seed=n)
    p_tq, g_tq = run("torchquantum", "u3cu3", n, n_blocks, angles, weights)
    p_pl, g_pl = run("pennylane", "u3cu3", n, n_blocks, angles, weights)
    assert (p_tq - p_pl).abs().max() <= 1e-6
    assert (g_tq - g_pl).abs().max() <= 1e-5
    assert abs(p_tq.sum().item() - 1) < 1e-5


@pytest.mark.parametrize("ansatz", ANSATZE)
@pytest.mark.parametrize(("n", "n_blocks"), [(2, 1), (4, 3), (6, 2), (7, 5)])
def test_native_matches_torchquantum_and_pennylane(ansatz, n, n_blocks):
    angles, weights = random_case(ansatz, n, n_blocks, seed=10 * n + n_blocks)
    p_nat, g_nat = run("native", ansatz, n, n_blocks, angles, weights)
    for backend in ("torchquantum", "pennylane"):
        p, g = run(backend, ansatz, n, n_blocks, angles, weights)
        assert (p - p_nat).abs().max() <= 1e-5, backend
        assert (g - g_nat).abs().max() <= 1e-4, backend


def test_qt_models_on_all_backends_give_the_same_logits():
    x = torch.randn(3, 1, 28, 28)
    nets = {b: qt_model("mnist", 1, backend=b, seed=7) for b in ("native", "torchquantum", "pennylane")}
    for net in nets.values():
        net.load_state_dict(nets["native"].state_dict())
    logits = {b: net(x) for b, net in nets.items()}
    torch.testing.assert_close(logits["torchquantum"], logits["native"], atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(logits["pennylane"], logits["native"], atol=1e-4, rtol=1e-4)
