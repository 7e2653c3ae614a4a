"""qt_helpers: the small library behind the Quantum-Train book.

Data (`data`), the classical CNNs (`models`), the QNN ansätze (`circuits`) and their
backends (`qnn`, with the fast `native` simulator), the Quantum-Train model (`qt`),
one training loop (`train`) and the named recipes (`recipes`); for the chapters, their
helpers (`notebook`), figures (`plot`), the published numbers (`published`) and the step
timer (`bench`), so that a chapter imports `qt_helpers` alone. TorchQuantum and PennyLane
load only when used. The book's tooling (grids, report, results page, notebook runner) is
`qt_helpers.science`, which this package never imports.
"""
from .bench import time_steps
from .circuits import ANSATZE, get_ansatz, n_qubits_for
from .data import DATASETS, Data, DataNotFoundError, TensorLoader, load_data, load_loaders
from .models import CifarCNN, MnistCNN, budget_cnn, cnn, num_params
from .notebook import (GLUED, check_params, environment, glue, late_gain, markdown_table, percent, pick,
                       resolve_profile, runs_table, save_glued, train_models, train_run, trend)
from .plot import COLORS, model_color, plot_bars, plot_history, plot_pipeline, plot_probabilities, plot_weights
from .published import PUBLISHED, published_qt
from .qnn import BACKENDS, available, make_qnn
from .qt import MappingModel, Preset, QTModel, get_preset, qt_model
from .recipes import RECIPES, Recipe, get_recipe
from .train import CheckpointError, evaluate, fit, get_device

__version__ = "0.1.0"

__all__ = [
    "ANSATZE", "BACKENDS", "COLORS", "CheckpointError", "CifarCNN", "DATASETS", "Data", "DataNotFoundError",
    "GLUED", "MappingModel", "MnistCNN", "PUBLISHED", "Preset", "QTModel", "RECIPES", "Recipe", "TensorLoader",
    "available", "budget_cnn", "check_params", "cnn", "environment", "evaluate", "fit", "get_ansatz", "get_device",
    "get_preset", "get_recipe", "glue", "late_gain", "load_data", "load_loaders", "make_qnn", "markdown_table",
    "model_color", "n_qubits_for", "num_params", "percent", "pick", "plot_bars", "plot_history", "plot_pipeline",
    "plot_probabilities", "plot_weights", "published_qt", "qt_model", "resolve_profile", "runs_table", "save_glued",
    "time_steps", "train_models", "train_run", "trend",
]
