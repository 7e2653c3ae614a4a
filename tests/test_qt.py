"""The Quantum-Train model: parameter counts, weight generation, export, bad input."""
import pytest
import torch

from qt_helpers import MappingModel, QTModel, cnn, num_params, qt_model
from qt_helpers.qt import Preset, bitstrings, estimate, sample_counts


@pytest.mark.parametrize(("dataset", "relu", "expected"), [("mnist", False, 6690), ("fashion_mnist", True, 6690),
                                                     ("cifar10", False, 285226), ("cifar10", True, 285226)])
def test_cnn_sizes_match_the_reference(dataset, relu, expected):
    net = cnn(dataset, relu=relu)
    assert num_params(net) == expected
    size = 32 if dataset == "cifar10" else 28
    assert net(torch.zeros(2, 3 if dataset == "cifar10" else 1, size, size)).shape == (2, 10)


@pytest.mark.parametrize(("dataset", "blocks", "qubits", "total"), [("mnist", 16, 13, 1497), ("mnist", 1, 13, 327),
                                                            ("fashion_mnist", 7, 13, 795),
                                                            ("cifar10", 38, 19, 21453), ("cifar10", 95, 19, 27951)])
def test_reference_parameter_counts(dataset, blocks, qubits, total):
    table = qt_model(dataset, blocks).param_table()
    per_block = 78 if qubits == 13 else 114
    assert (table["qubits"], table["qnn_params"], table["qt_params"]) == (qubits, per_block * blocks, total)
    assert table["mapping_params"] == (249 if qubits == 13 else 17121)


def test_named_options_change_the_count_explicitly():
    base = qt_model("mnist", 4).param_table()["qt_params"]
    assert qt_model("mnist", 4, trainable_transform=True).param_table()["qt_params"] == base + 3
    assert qt_model("mnist", 4, ansatz="ry_cnot").param_table()["qnn_params"] == 13 * 4


def test_forward_gives_logits_and_gradients_reach_every_parameter():
    net = qt_model("mnist", 2, seed=0, activation="tanh", trainable_transform=True)
    loss = net(torch.randn(4, 1, 28, 28)).logsumexp(1).sum()
    loss.backward()
    trained = [(k, p) for k, p in net.named_parameters() if p.requires_grad]
    assert {k.split(".")[0] for k, _ in trained} == {"qnn", "mapping", "transform"}
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for _, p in trained)
    assert all(p.grad is None for p in net.net.parameters())  # the template CNN is never trained


def test_generated_weights_are_mean_free_and_shaped_like_the_cnn():
    net = qt_model("mnist", 3, seed=1)
    w = net.generate()
    assert w.shape == (6690,)
    assert abs(w.mean().item()) < 1e-6
    shapes = {k: p.shape for k, p in cnn("mnist").named_parameters()}
    assert {k: v.shape for k, v in net.weights().items()} == shapes


def test_export_is_a_plain_cnn_with_identical_logits(tmp_path):
    net = qt_model("mnist", 2, seed=3).eval()
    x = torch.randn(8, 1, 28, 28)
    plain = net.export()
    assert type(plain).__name__ == "MnistCNN"
    assert all(p.requires_grad for p in plain.parameters())
    torch.save(plain.state_dict(), tmp_path / "cnn.pt")
    fresh = cnn("mnist")
    fresh.load_state_dict(torch.load(tmp_path / "cnn.pt", weights_only=True))
    with torch.no_grad():
        assert torch.equal(fresh(x), net(x))


def test_affine_mapping_collapses_exactly():
    m = MappingModel(14, (4, 20, 4)).double()
    x = torch.randn(50, 14, dtype=torch.float64)
    layered = x
    for layer in m.layers:
        layered = layer(layered)
    torch.testing.assert_close(m(x), layered)
    assert num_params(m) == 249


def test_bitstrings_are_plus_minus_one_with_wire_zero_first():
    b = bitstrings(3)
    assert b.tolist()[1] == [-1, -1, 1]
    assert b.tolist()[4] == [1, -1, -1]
    assert bitstrings(13, 6690).shape == (6690, 13)


def test_too_few_qubits_is_a_clear_error():
    with pytest.raises(ValueError, match=r"12 qubits give 2\^12 = 4,096 .* 6,690 weights; use at least 13"):
        QTModel(cnn("mnist"), 2, n_qubits=12)


def test_unknown_names_list_the_valid_ones():
    with pytest.raises(ValueError, match="native, torchquantum, pennylane"):
        qt_model("mnist", 2, backend="qiskit")
    with pytest.raises(ValueError, match="u3cu3, ry_cnot, ry_rz_cz"):
        qt_model("mnist", 2, ansatz="hea")
    with pytest.raises(ValueError, match="reference"):
        qt_model("mnist", 2, preset="best")
    with pytest.raises(ValueError, match="mnist, fashion_mnist, cifar10"):
        qt_model("svhn", 2)
    with pytest.raises(ValueError, match="relu"):
        MappingModel(3, activation="swish")


def test_transform_matches_the_reference_formula():
    net = qt_model("mnist", 1, seed=0)
    p = net.qnn()[: net.m]
    x = (0.8 * torch.tanh(0.1 * 2**12 * p)) ** 0.3
    torch.testing.assert_close(net.features()[:, -1], x - x.mean())
    assert isinstance(net.preset, Preset)


@pytest.mark.parametrize(("dataset", "budget"), [("mnist", 1497), ("mnist", 327), ("cifar10", 27951)])
def test_budget_cnn_fits_the_budget_closely(dataset, budget):
    from qt_helpers.models import budget_cnn

    n = num_params(budget_cnn(dataset, budget))
    assert 0.75 * budget <= n <= budget


def test_seed_fixes_every_trained_parameter():
    a, b = qt_model("mnist", 2, seed=5), qt_model("mnist", 2, seed=5)
    trained = lambda net: [p for p in net.parameters() if p.requires_grad]  # noqa: E731
    assert all(torch.equal(p, q) for p, q in zip(trained(a), trained(b), strict=True))
    c = qt_model("mnist", 2, seed=6)
    assert not torch.equal(a.mapping.layers[0].weight, c.mapping.layers[0].weight)


def test_standardize_option_centres_and_scales_each_output_unit():
    base = qt_model("cifar10", 19).param_table()["qt_params"]
    net = qt_model("cifar10", 19, seed=0, standardize=True)
    assert net.param_table()["qt_params"] == base + 10  # one scale per CNN parameter tensor
    w = net.weights()
    rows = w["classifier.0.weight"]  # (128, 2048)
    torch.testing.assert_close(rows.mean(1), torch.zeros(128), atol=1e-5, rtol=0)
    torch.testing.assert_close(rows.std(1), torch.full((128,), 2048**-0.5), atol=1e-4, rtol=0)
    assert abs(w["features.0.bias"].std().item() - 75**-0.5) < 1e-4


def test_shot_counts_are_one_multinomial_draw():
    torch.manual_seed(0)
    p = torch.rand(32) ** 4
    p /= p.sum()
    draws = torch.stack([sample_counts(p, 1000) for _ in range(3000)])
    assert (draws.sum(1) == 1000).all()
    assert (draws == draws.round()).all()
    assert (draws >= 0).all()
    mean, var = draws.mean(0), draws.var(0)
    expected_var = 1000 * p * (1 - p)
    assert ((mean - 1000 * p).abs() <= 5 * (expected_var / 3000).sqrt() + 1e-9).all()
    assert torch.allclose(var, expected_var.to(var.dtype), rtol=0.15, atol=0.05)
    cov = torch.cov(draws[:, :2].T)[0, 1]  # categories are negatively correlated: -S p_i p_j
    assert abs(cov + 1000 * p[0] * p[1]) < 5 * (expected_var[0] * expected_var[1] / 3000).sqrt()


def test_shot_estimate_is_counts_over_shots_with_the_exact_gradient():
    p = torch.tensor([0.1, 0.2, 0.3, 0.4], requires_grad=True)
    w = torch.tensor([1.0, -2.0, 3.0, 0.5])
    torch.manual_seed(1)
    est = estimate(p, 100)
    assert torch.allclose(est * 100, est.detach().mul(100).round())
    assert est.sum().item() == pytest.approx(1)
    (est * w).sum().backward()
    assert torch.equal(p.grad, w)
    assert (estimate(p, 10**8) - p).abs().max() < 1e-3


def test_qt_model_with_shots_draws_fresh_weights_each_generation():
    net = qt_model("mnist", 2, seed=0, shots=2**13)
    torch.manual_seed(0)
    a, b = net.generate(), net.generate()
    torch.manual_seed(0)
    assert not torch.equal(a, b)
    assert torch.equal(a, net.generate())
    exact = qt_model("mnist", 2, seed=0).generate()
    big = qt_model("mnist", 2, seed=0, shots=2**40).generate()
    assert (big - exact).abs().max() < 1e-3 < (a - exact).abs().max()


def test_init_option_sets_the_qnn_angles():
    small = qt_model("mnist", 2, seed=0, init="small").qnn.angles
    uniform = qt_model("mnist", 2, seed=0, init="uniform").qnn.angles
    assert small.abs().max() < 0.1
    assert uniform.abs().max() > 2
    assert uniform.abs().max() <= torch.pi
    assert torch.equal(uniform, qt_model("mnist", 2, seed=0).qnn.angles)  # U3 + CU3's original init
    with pytest.raises(ValueError, match="choose one of uniform, small"):
        qt_model("mnist", 2, init="zeros")


def test_chapter_1_s_gate_by_gate_simulator_makes_a_bell_state():
    from qt_helpers.native import apply_gate

    h = torch.tensor([[1, 1], [1, -1]], dtype=torch.complex128) / 2**0.5
    cnot = torch.tensor([[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 0, 1], [0, 0, 1, 0]], dtype=torch.complex128)
    psi = torch.zeros(2, 2, 2, dtype=torch.complex128)
    psi[0, 0, 0] = 1
    psi = apply_gate(apply_gate(psi, h, [0]), cnot, [0, 2])  # entangle wires 0 and 2; wire 1 stays |0>
    p = psi.reshape(-1).abs().square()
    torch.testing.assert_close(p, torch.tensor([0.5, 0, 0, 0, 0, 0.5, 0, 0], dtype=torch.float64))
