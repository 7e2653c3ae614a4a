"""The CUDA-graph step (`GraphedStep`, chapter 6): what a CPU can check — its warm-up leaves no trace, and a CPU
refuses it before any work. The replay itself is checked on a GPU by tools/gpu_run.py (stage 2)."""
import pytest
import torch

from qt_helpers import TensorLoader, fit, qt_model
from qt_helpers.cuda_graph import GraphedStep
from qt_helpers.train import make_optimizer


def batch(seed=0, n=32):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 1, 28, 28, generator=g), torch.randint(0, 10, (n,), generator=g)


def trained(warm_up, num_steps=3):
    """Parameters and Adam state after `num_steps` eager steps, with or without an undone warm-up first."""
    net = qt_model("mnist", 2, seed=0)
    opt = make_optimizer(net, lr=1e-2)[0]
    step = GraphedStep(net, torch.nn.CrossEntropyLoss(), opt)
    x, y = batch()
    if warm_up:
        step.warm_up(x, y)
    for i in range(num_steps):
        step.eager(*batch(i + 1))
    state = [t for s in opt.state.values() for t in s.values() if torch.is_tensor(t)]
    return [p.detach().clone() for p in net.parameters() if p.requires_grad], state


def test_warm_up_is_undone_so_training_matches_the_eager_loop():
    params, state = trained(warm_up=True)
    params_ref, state_ref = trained(warm_up=False)
    assert len(params) == len(params_ref)
    assert len(state) == len(state_ref) > 0
    for a, b in zip(params + state, params_ref + state_ref, strict=True):
        assert torch.equal(a, b)


def test_cuda_graph_on_a_cpu_is_refused_before_training():
    x, y = batch()
    loader = TensorLoader(x, y, 16)
    net = qt_model("mnist", 2, seed=0)
    before = [p.detach().clone() for p in net.parameters()]
    with pytest.raises(ValueError, match="needs a CUDA device"):
        fit(net, loader, num_epochs=1, device="cpu", cuda_graph=True, progress=False)
    assert all(torch.equal(a, b) for a, b in zip(before, net.parameters(), strict=True))
    with pytest.raises(ValueError, match="CUDA GPU"):
        GraphedStep(net, torch.nn.CrossEntropyLoss(), make_optimizer(net)[0])(x, y)
