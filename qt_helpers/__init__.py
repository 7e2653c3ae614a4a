"""qt_helpers: the small library behind the Quantum-Train book.

Data (`data`), the classical CNNs (`models`), the QNN ansätze (`circuits`) and their
backends (`qnn`, with the fast `native` simulator), the Quantum-Train model (`qt`),
one training loop (`train`), the named recipes (`recipes`), a run's typed specification
(`spec`) and its record (`records`), and figures of QT's pieces (`plot`). TorchQuantum and
PennyLane load only when used. The book's tooling (chapter helpers, grids, report, results
page, notebook runner) is the separate package `qtbook` (tools/), which this one never imports.
"""
from .circuits import ANSATZE, get_ansatz, n_qubits_for
from .data import DATASETS, Data, DataNotFoundError, TensorLoader, load_data, load_loaders
from .models import CifarCNN, MnistCNN, budget_cnn, cnn, num_params
from .plot import COLORS, model_color, plot_bars, plot_history, plot_pipeline, plot_probabilities, plot_weights
from .qnn import BACKENDS, available, make_qnn
from .qt import MappingModel, Preset, QTModel, get_preset, qt_model
from .recipes import RECIPES, Recipe, get_recipe
from .train import CheckpointError, evaluate, fit, get_device

__version__ = "0.1.0"

__all__ = [
    "ANSATZE", "BACKENDS", "COLORS", "DATASETS", "RECIPES", "CheckpointError", "CifarCNN", "Data", "DataNotFoundError",
    "MappingModel", "MnistCNN", "Preset", "QTModel", "Recipe", "TensorLoader", "available", "budget_cnn", "cnn",
    "evaluate", "fit", "get_ansatz", "get_device", "get_preset", "get_recipe", "load_data", "load_loaders", "make_qnn",
    "model_color", "n_qubits_for", "num_params", "plot_bars", "plot_history", "plot_pipeline", "plot_probabilities",
    "plot_weights", "qt_model",
]
