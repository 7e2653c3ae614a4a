"""qt_helpers: the small library behind the Quantum-Train book.

Data (`data`), the classical CNNs (`models`), the QNN ansätze (`circuits`) and their
backends (`qnn`, with the fast `native` simulator), the Quantum-Train model (`qt`)
and one training loop (`train`). TorchQuantum and PennyLane load only when used.
"""
from .circuits import ANSATZE, get_ansatz, n_qubits_for
from .data import DATASETS, Data, DataNotFoundError, TensorLoader, load_data, load_loaders
from .models import CifarCNN, MnistCNN, cnn, num_params
from .qnn import BACKENDS, make_qnn
from .qt import MappingModel, Preset, QTModel, get_preset, qt_model
from .train import evaluate, fit, get_device

__version__ = "0.1.0"
