"""Fixtures shared by the tests."""
import numpy as np
import pytest


@pytest.fixture
def pack_dir(tmp_path):
    """A tiny MNIST pack (200 train / 100 test images) in the shared packs' format."""
    rng = np.random.default_rng(0)
    y_train, y_test = np.arange(200) % 10, np.arange(100) % 10
    def make(y):  # noise, plus a bright band whose position is the class
        band = np.arange(28)[None, :, None] // 3 == y[:, None, None]
        return (rng.integers(0, 60, (len(y), 28, 28)) + 150 * band).astype(np.uint8)

    np.savez(tmp_path / "mnist.npz", x_train=make(y_train), y_train=y_train.astype(np.uint8),
             x_test=make(y_test), y_test=y_test.astype(np.uint8), classes=np.array([str(i) for i in range(10)]))
    return tmp_path


@pytest.fixture
def cells():
    """A function: the rows of the Markdown tables in a text, each a tuple of its cells (tabulate pads them)."""
    def rows(text):
        return [tuple(c.strip() for c in line.strip()[1:-1].split("|")) for line in text.splitlines()
                if line.startswith("|")]
    return rows
