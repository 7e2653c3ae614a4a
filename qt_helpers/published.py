"""Published Quantum-Train results (the original toolkit's result figures), for comparison tables.

Caveats the book states next to them: the 16-block MNIST/FashionMNIST QT figures equal the
original notebooks' *training* accuracies (their test accuracies were 91.20 % on a random
1,000-image test subset, and 78.71 %), and the classical baselines were trained for one epoch.
"""

QT_BLOCKS = {"mnist": (1, 4, 7, 10, 13, 16), "fashion_mnist": (1, 4, 7, 10, 13, 16),
             "cifar10": (19, 38, 57, 76, 95)}

PUBLISHED = {
    "mnist": {"classical_acc": 95.46, "classical_params": 6690,
              "qt_acc": (33.45, 56.0, 82.0, 85.3, 90.7, 91.8), "qt_test_acc_16": 91.20},
    "fashion_mnist": {"classical_acc": 79.42, "classical_params": 6690,
                      "qt_acc": (34.03, 61.68, 63.01, 73.91, 77.87, 79.46), "qt_test_acc_16": 78.71},
    "cifar10": {"classical_acc": 62.58, "classical_params": 285226,
                "qt_acc": (31.58, 33.12, 39.24, 51.06, 63.10)},
}


def qt_params(dataset, blocks):
    """QT trainable parameters of the reference preset: 78·L + 249, or 114·L + 17,121 for CIFAR-10."""
    return 114 * blocks + 17121 if dataset == "cifar10" else 78 * blocks + 249


def published_qt(dataset, blocks):
    """The published QT accuracy (%) at `blocks`, or None where none was published."""
    table = dict(zip(QT_BLOCKS[dataset], PUBLISHED[dataset]["qt_acc"]))
    return table.get(blocks)
