"""Published Quantum-Train results (the original toolkit's result figures), for comparison tables.

Caveats the book states next to them: the 16-block MNIST/FashionMNIST QT figures equal the
original notebooks' *training* accuracies (their test accuracies were 91.20 % for MNIST, on a random
1,000-image test subset, and 78.71 % for FashionMNIST, on its full test set), and the MNIST and
FashionMNIST classical baselines were trained for one epoch. How long the CIFAR-10 baseline trained, and
whether the CIFAR-10 figures are test accuracies, is not known.
"""

QT_BLOCKS = {"mnist": (1, 4, 7, 10, 13, 16), "fashion_mnist": (1, 4, 7, 10, 13, 16),
             "cifar10": (19, 38, 57, 76, 95)}

PUBLISHED = {  # accuracies as fractions, like every accuracy in this package (shown in % where shown)
    "mnist": {"classical_acc": 0.9546, "classical_params": 6690,
              "qt_acc": (0.3345, 0.56, 0.82, 0.853, 0.907, 0.918), "qt_test_acc_16": 0.912},
    "fashion_mnist": {"classical_acc": 0.7942, "classical_params": 6690,
                      "qt_acc": (0.3403, 0.6168, 0.6301, 0.7391, 0.7787, 0.7946), "qt_test_acc_16": 0.7871},
    "cifar10": {"classical_acc": 0.6258, "classical_params": 285226,
                "qt_acc": (0.3158, 0.3312, 0.3924, 0.5106, 0.6310)},
}


def qt_params(dataset, blocks):
    """QT trainable parameters of the reference preset: 78·L + 249, or 114·L + 17,121 for CIFAR-10."""
    return 114 * blocks + 17121 if dataset == "cifar10" else 78 * blocks + 249


def published_qt(dataset, blocks):
    """The published QT accuracy (a fraction) at `blocks`, or None where none was published."""
    table = dict(zip(QT_BLOCKS[dataset], PUBLISHED[dataset]["qt_acc"], strict=True))
    return table.get(blocks)
