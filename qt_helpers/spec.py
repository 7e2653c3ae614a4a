"""What one training run is: a typed specification, checked in one place, with a stable key (chapter 7).

    spec = RunSpec.create(recipe="tuned", dataset="mnist", epochs=5)   # a recipe's settings, then yours
    spec.check()                  # every mistake as one ValueError, before any data is loaded
    spec.key()                    # 'a3f0c1d2e4b5': equal for two specs that train the same run
    spec.argv()                   # the same run as `python -m qt_helpers train` flags
    record = qt_helpers.run.run(spec)                                # train it (qt_helpers.run)

A spec holds every setting that changes a run's result, resolved: a recipe's model, mapping-model options,
learning rate and schedule are written into its fields (`recipe` keeps the name, as a label), and `resolved()`
fills in the dataset's batch size and the model's default learning rate. Where a run's files go (its JSON,
checkpoint, export) is not part of it: see `qt_helpers.run.Outputs`. The CLI's `train` options are these fields
one to one (tests/test_spec.py checks), so `cli.spec_from_argv(spec.argv()) == spec.resolved()`.
"""
from __future__ import annotations

import hashlib
import json
import math
from dataclasses import asdict, dataclass, fields, replace

import torch

from .circuits import ANSATZE, INITS, get_ansatz, n_qubits_for
from .controls import CONTROLS
from .data import DATASETS, INFO, resolve_name
from .limits import check_memory, run_bytes
from .models import cnn, num_params
from .qnn import BACKENDS
from .qt import ACTIVATIONS, PRESETS
from .recipes import RECIPES
from .train import SCHEDULES, get_device

MODELS = ("qt", "classical")
TEST_WHEN = ("epochs", "end", "never")
RECIPE_FIELDS = ("model", "activation", "standardize", "lr", "schedule")  # what a recipe sets
CHOICES = {"dataset": DATASETS, "model": MODELS, "backend": BACKENDS, "ansatz": ANSATZE, "preset": tuple(PRESETS),
           "activation": tuple(ACTIVATIONS), "init": INITS, "control": CONTROLS, "schedule": SCHEDULES,
           "test": TEST_WHEN, "recipe": tuple(RECIPES)}


@dataclass(frozen=True)
class RunSpec:
    """One training run's settings (see the module docstring); the fields are `train`'s options."""

    dataset: str = "mnist"
    model: str = "qt"
    backend: str = "native"
    ansatz: str = "u3cu3"
    preset: str = "reference"
    blocks: int = 16
    qubits: int | None = None
    activation: str | None = None
    trainable_transform: bool = False
    standardize: bool = False
    init: str | None = None
    shots: int | None = None
    relu: bool = False
    control: str | None = None
    budget: int | None = None
    epochs: int = 1
    batch_size: int | None = None
    lr: float | None = None
    schedule: str = "plateau"
    n_train: int | None = None
    n_test: int | None = None
    val_fraction: float = 0.0
    test: str = "epochs"
    seed: int = 42
    device: str = "auto"
    recipe: str | None = None  # a label: the recipe's settings are in the fields above

    @classmethod
    def create(cls, recipe: str | None = None, **given) -> RunSpec:
        """A spec from a named recipe (qt_helpers.recipes) and the settings `given`: a setting given wins over
        the recipe's, and the recipe's over the default. A recipe's model is part of it: another is refused."""
        unknown = set(given) - {f.name for f in fields(cls)}
        if unknown:
            msg = f"unknown run settings: {', '.join(sorted(unknown))}; see qt_helpers.RunSpec"
            raise ValueError(msg)
        if recipe is None:
            return cls(**given)
        if recipe not in RECIPES:
            msg = f"unknown recipe {recipe!r}; choose one of: {', '.join(RECIPES)}"
            raise ValueError(msg)
        r = RECIPES[recipe]
        if given.get("model") not in (None, r.model):
            msg = (f"--recipe {recipe} trains the {'classical CNN' if r.model == 'classical' else 'QT model'}"
                   f", not --model {given['model']}; drop one of them (QT recipes: "
                   f"{', '.join(n for n, x in RECIPES.items() if x.model == 'qt')})")
            raise ValueError(msg)
        dataset = given.get("dataset", cls.dataset)
        try:
            options = r.options(dataset)  # QT's mapping-model options on this dataset: activation, standardize
        except ValueError:
            options = {}  # an unknown dataset: check() says so
        preset = {"model": r.model, "lr": r.lr, "schedule": r.schedule, **options}
        return cls(recipe=recipe, **{**preset, **{k: v for k, v in given.items() if v is not None}})

    def resolved(self) -> RunSpec:
        """This spec with its defaults filled in: the canonical dataset name, the dataset's batch size, the model's
        learning rate (QT 1e-4, as the reference; classical 1e-3)."""
        dataset = resolve_name(self.dataset)
        batch_size = INFO[dataset].batch_size if self.batch_size is None else self.batch_size
        return replace(self, dataset=dataset, batch_size=batch_size,
                       lr=self.lr if self.lr is not None else (1e-4 if self.model == "qt" else 1e-3))

    def settings(self) -> dict:
        """The resolved settings that make the run what it is (all fields but the `recipe` label)."""
        out = asdict(self.resolved())
        del out["recipe"]
        return out

    def key(self) -> str:
        """A stable short name of the run: two specs with equal `settings()` have the same key."""
        text = json.dumps(self.settings(), sort_keys=True, default=str)
        return hashlib.sha256(text.encode()).hexdigest()[:12]

    def argv(self) -> list[str]:
        """`python -m qt_helpers train` arguments of this run: every setting that differs from its default."""
        out = []
        for f in fields(self):
            value = getattr(self, f.name)
            if value == f.default:
                continue
            flag = "--" + f.name.replace("_", "-")
            if isinstance(value, bool):
                out.append(flag if value else "--no-" + f.name.replace("_", "-"))
            else:
                out += [flag, f"{value:g}" if isinstance(value, float) else str(value)]
        return out

    def check(self) -> torch.device:
        """Raise ValueError (one line: what is wrong, what to do) for a spec that cannot run, before any work;
        returns the device it runs on."""
        s = self.resolved()  # raises for an unknown dataset
        for name, valid in CHOICES.items():
            value = getattr(s, name)
            if value is not None and value not in valid:
                msg = f"unknown {name} {value!r}; choose one of: {', '.join(valid)}"
                raise ValueError(msg)
        for name in ("epochs", "blocks", "batch_size", "n_train", "n_test", "budget"):
            _at_least(getattr(s, name), 1, name)
        if s.shots is not None and s.shots < 1:
            msg = f"--shots must be a positive number of measurements, not {s.shots}"
            raise ValueError(msg)
        _at_least(s.qubits, 2, "qubits")
        fact = INFO[s.dataset]
        for name, full in (("n_train", fact.n_train), ("n_test", fact.n_test)):
            if getattr(s, name) is not None and getattr(s, name) > full:
                msg = (f"--{name.replace('_', '-')} {getattr(s, name):,} is more than {s.dataset}'s "
                       f"{full:,} images")
                raise ValueError(msg)
        if not 0 <= s.val_fraction < 1:
            msg = f"--val-fraction must be at least 0 and below 1, got {s.val_fraction}"
            raise ValueError(msg)
        if s.test == "never" and not s.val_fraction:
            msg = ("--test never needs --val-fraction: without the test set, only a validation split "
                   "says how the run did")
            raise ValueError(msg)
        if not 0 <= s.seed < 2**32:
            msg = f"--seed must be a whole number from 0 to 2**32 - 1, got {s.seed}"
            raise ValueError(msg)
        if not (isinstance(s.lr, (int, float)) and math.isfinite(s.lr) and s.lr > 0):
            msg = f"--lr must be a positive number, got {s.lr}"
            raise ValueError(msg)
        if s.model == "classical":
            if s.shots is not None or s.activation is not None or s.trainable_transform or s.control:
                msg = ("--shots, --activation, --trainable-transform and --control are QT options; "
                       "drop them for --model classical")
                raise ValueError(msg)
        elif s.budget is not None:
            msg = "--budget is for --model classical; a QT model's size is set by --blocks"
            raise ValueError(msg)
        m = num_params(cnn(s.dataset, s.relu))
        if s.model == "qt" and s.qubits is not None and 2**s.qubits < m:
            msg = (f"{s.qubits} qubits give 2^{s.qubits} = {2**s.qubits:,} basis states, fewer than the "
                   f"CNN's {m:,} weights; use at least {n_qubits_for(m)} qubits")
            raise ValueError(msg)
        device = _device(s.device)
        s._check_size(m)
        return device

    def _check_size(self, m):
        """Upper limits: QT's QNN no larger than the CNN it generates, the estimated memory (qt_helpers.limits)
        within what this machine has available."""
        n = None
        if self.model == "qt":
            n = self.qubits or n_qubits_for(m)
            per_block = get_ansatz(self.ansatz).angles_per_block(n)
            if self.blocks * per_block > m:
                msg = (f"--blocks {self.blocks:,} gives the QNN {self.blocks * per_block:,} angles, more "
                       f"than the {m:,} weights of the CNN it generates; use at most {m // per_block:,} "
                       "blocks here (or --model classical)")
                raise ValueError(msg)
        images = None if self.n_train is None else self.n_train + (self.n_test or 10000)
        try:
            check_memory(run_bytes(self.dataset, n, self.blocks, self.batch_size, images),
                         f"this run ({self.dataset}" + (f", {n} qubits, {self.blocks:,} blocks)" if n else ")"))
        except MemoryError as e:
            msg = f"{e}; use fewer qubits or blocks, a data subset (--n-train), or a larger machine"
            raise ValueError(msg) from None


def _at_least(value, low, name):
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < low):
        msg = f"--{name.replace('_', '-')} must be a whole number >= {low}, got {value}"
        raise ValueError(msg)


def _device(name):
    """The torch device `name` asks for, refused in one line when this machine has none such."""
    try:
        device = get_device(name)
    except RuntimeError as e:
        msg = (f"--device {name!r} is not a device torch knows ({str(e).splitlines()[0]}); "
               "use auto, cpu or cuda")
        raise ValueError(msg) from None
    if device.type == "cuda" and not torch.cuda.is_available():
        msg = f"--device {name}: this machine has no CUDA GPU; use --device cpu (or auto)"
        raise ValueError(msg)
    if device.type not in ("cpu", "cuda"):
        msg = f"--device {name}: only cpu and cuda are supported"
        raise ValueError(msg)
    return device
