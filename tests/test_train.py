"""The training loop: learning, checkpoints and resume, NaN handling."""
import os

import pytest
import torch

from qt_helpers import TensorLoader, cnn, evaluate, fit, load_loaders, qt_model


def toy_loaders(n=96, seed=0):
    g = torch.Generator().manual_seed(seed)
    x, y = torch.randn(n, 1, 28, 28, generator=g), torch.randint(0, 10, (n,), generator=g)
    return TensorLoader(x, y, 32, shuffle=True, seed=seed), TensorLoader(x, y, 64)


def test_history_has_one_row_per_epoch():
    train, test = toy_loaders()
    torch.manual_seed(0)
    history = fit(cnn("mnist"), train, test, num_epochs=2, lr=1e-3, device="cpu", progress=False)
    assert history["epoch"] == [1, 2]
    assert all(len(v) == 2 for v in history.values())
    assert history["train_loss"][1] < history["train_loss"][0]


def test_resume_after_interruption_matches_an_uninterrupted_run(tmp_path):
    def run(interrupt_at=None, resume=False):
        torch.manual_seed(0)
        net = qt_model("mnist", 2, seed=0)
        train, test = toy_loaders()

        def on_step(epoch, step, _loss):
            if (epoch, step) == interrupt_at:
                raise KeyboardInterrupt

        history = fit(net, train, test, num_epochs=3, lr=1e-3, device="cpu", checkpoint=tmp_path / "ckpt.pt",
                      resume=resume, progress=False, on_step=on_step)
        return net, history

    straight, h_straight = run()
    (tmp_path / "ckpt.pt").unlink()
    with pytest.raises(KeyboardInterrupt):
        run(interrupt_at=(2, 1))  # mid-way through the third epoch: two epochs are saved
    saved = torch.load(tmp_path / "ckpt.pt", weights_only=True)
    assert saved["history"]["epoch"] == [1, 2]  # lost at most the interrupted epoch
    resumed, h_resumed = run(resume=True)
    assert h_resumed["epoch"] == [1, 2, 3]
    from qtbook.run_notebooks import training_seconds  # a recorded chapter's time over its sittings

    assert training_seconds(tmp_path) == pytest.approx(sum(h_resumed["seconds"]))
    assert h_resumed["train_loss"] == pytest.approx(h_straight["train_loss"], rel=1e-5)
    for a, b in zip(straight.parameters(), resumed.parameters(), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


def test_nan_loss_stops_with_epoch_and_step():
    train, test = toy_loaders()
    train.x[40] = float("nan")  # lands in some batch of the first epoch
    with pytest.raises(FloatingPointError, match=r"epoch 1, step \d+.*smaller learning rate"):
        fit(cnn("mnist"), train, test, num_epochs=1, device="cpu", progress=False)


@pytest.mark.skipif(not os.environ.get("QT_DATA_DIR"), reason="needs QT_DATA_DIR with mnist.npz")
def test_classical_cnn_learns_mnist():
    torch.manual_seed(0)
    train, test, _ = load_loaders("mnist", 64, n_train=2000, n_test=500)
    net = cnn("mnist")
    before = evaluate(net, test)[1]
    history = fit(net, train, test, num_epochs=2, lr=1e-3, device="cpu", progress=False)
    assert before < 0.2
    assert history["test_acc"][-1] > 0.75  # 0.824 measured
