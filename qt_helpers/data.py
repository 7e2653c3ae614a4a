"""Image datasets (MNIST, Fashion-MNIST, CIFAR-10) as normalised tensors, and a tensor batch loader.

Where data comes from, in order:
1. ``data_dir`` (or env ``QT_DATA_DIR``): a pack ``<name>.npz`` or torchvision's own on-disk layout;
2. torchvision in the cache dir (env ``QT_CACHE_DIR`` or ``~/.cache/qt_helpers``), downloading if allowed;
3. otherwise a ``DataNotFoundError`` that lists every place looked.
"""
from __future__ import annotations

import io
import math
import os
import warnings
import zipfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torchvision
from PIL import Image
from torch import Tensor

try:  # torchvision 0.29 deprecates its image codecs (for TorchCodec); they still work and are ~3x faster than PIL
    from torchvision.io import ImageReadMode, decode_jpeg
except ImportError:  # pragma: no cover - future torchvision without them: fall back to PIL
    ImageReadMode, decode_jpeg = None, None

@dataclass(frozen=True)
class DatasetInfo:
    """One dataset's facts (chapter 2): sizes, image shape, classes, normalisation, its reference CNN."""

    name: str
    title: str
    n_train: int
    n_test: int
    shape: tuple[int, int, int]  # C, H, W
    classes: tuple[str, ...]
    stats: tuple[tuple[float, ...], tuple[float, ...]]  # (mean, std) per channel, the usual values
    cnn: str  # the reference CNN's class in qt_helpers.models
    cnn_params: int  # its parameters: the M weights QT generates (tests/test_data.py checks against models)
    batch_size: int  # the default batch: CIFAR-10 trains at 1,000 (an epoch of 50 steps), the others at 128
    tv_class: str  # torchvision's dataset class and its folder under a torchvision root
    tv_dir: str


# The one table of dataset facts; everything else (the CLI's choices and limits, the memory estimate, the grids)
# reads it.
INFO = {d.name: d for d in (
    DatasetInfo("mnist", "MNIST", 60000, 10000, (1, 28, 28), tuple(str(i) for i in range(10)),
                ((0.1307,), (0.3081,)), "MnistCNN", 6690, 128, "MNIST", "MNIST/raw"),
    DatasetInfo("fashion_mnist", "FashionMNIST", 60000, 10000, (1, 28, 28),
                ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag",
                 "Ankle boot"), ((0.2860,), (0.3530,)), "MnistCNN", 6690, 128, "FashionMNIST", "FashionMNIST/raw"),
    DatasetInfo("cifar10", "CIFAR-10", 50000, 10000, (3, 32, 32),
                ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"),
                ((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)), "CifarCNN", 285226, 1000, "CIFAR10",
                "cifar-10-batches-py"),
)}
DATASETS = tuple(INFO)
DATA_ENV = "QT_DATA_DIR"
CACHE_ENV = "QT_CACHE_DIR"
ALIASES = {"mnist": "mnist", "fashionmnist": "fashion_mnist", "cifar10": "cifar10", "cifar": "cifar10"}


def info(name):
    """The facts of dataset `name` (any spelling `resolve_name` accepts): a `DatasetInfo`."""
    return INFO[resolve_name(name)]


class DataNotFoundError(FileNotFoundError):
    """No source for a dataset could be found; the message says where we looked and how to fix it."""


@dataclass
class Data:
    """A dataset as tensors: x_* float32 N×C×H×W (normalised), y_* int64."""
    name: str
    x_train: Tensor
    y_train: Tensor
    x_test: Tensor
    y_test: Tensor
    classes: list[str]
    source: str
    x_val: Tensor | None = None  # the validation split, when one was carved from the training set
    y_val: Tensor | None = None

    def __repr__(self):
        def shape(x):
            return "×".join(map(str, x.shape))

        val = "" if self.x_val is None else f", val={shape(self.x_val)}"
        return (f"Data({self.name!r}, train={shape(self.x_train)}{val}, test={shape(self.x_test)}, "
                f"classes={len(self.classes)}, source={self.source!r})")


def resolve_name(name):
    """Return the canonical dataset name for `name` (case- and separator-insensitive)."""
    key = str(name).lower().replace("-", "").replace("_", "").replace(" ", "")
    if not isinstance(name, str) or key not in ALIASES:
        msg = (f"unknown dataset {name!r}; valid names: {', '.join(DATASETS)} "
               f"(aliases: fashionmnist, fashion-mnist, cifar-10, cifar)")
        raise ValueError(msg)
    return ALIASES[key]


def cache_dir():
    """Folder where torchvision datasets are cached (env QT_CACHE_DIR or ~/.cache/qt_helpers)."""
    return Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "qt_helpers").expanduser()


# ---------------------------------------------------------------- raw sources
# A split is (images, labels): images is a uint8 array N×H×W[×C] or N×C×H×W, or a Jpegs.

class Jpegs:
    """JPEG files concatenated in one uint8 buffer; image i is buf[offsets[i]:offsets[i+1]]."""
    def __init__(self, buf, offsets, path=""):
        self.buf, self.offsets, self.path = buf, offsets, path

    def __len__(self):
        return len(self.offsets) - 1

    def decode(self, idx, channels):
        """Decode images `idx` only, to a uint8 tensor N×C×H×W."""
        starts, ends = self.offsets[idx].tolist(), self.offsets[idx + 1].tolist()
        try:
            if decode_jpeg is None:
                mode = "L" if channels == 1 else "RGB"
                imgs = [np.asarray(Image.open(io.BytesIO(self.buf[a:b].tobytes())).convert(mode))
                        for a, b in zip(starts, ends, strict=True)]
                return nchw(np.stack(imgs), channels)
            buf, mode = torch.from_numpy(self.buf), ImageReadMode.GRAY if channels == 1 else ImageReadMode.RGB
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", DeprecationWarning)
                return torch.stack(decode_jpeg([buf[a:b] for a, b in zip(starts, ends, strict=True)], mode=mode))
        except (RuntimeError, OSError) as e:
            msg = f"{self.path}: cannot decode JPEG images ({e})"
            raise ValueError(msg) from None


def read_pack(path, name):
    """Read a `.npz` pack into {'train': (images, labels), 'test': ..., 'classes': [...]}; ValueError if bad."""
    out, keys = {}, set()
    try:
        with Path(path).open("rb") as f:  # closed even when numpy fails on a broken pack
            z = np.load(f, allow_pickle=False)
            if not isinstance(z, np.lib.npyio.NpzFile):
                msg = "holds a single array, not named arrays"
                raise ValueError(msg)
            with z:
                keys = set(z.files)
                for split in ("train", "test"):
                    if f"x_{split}" in keys:
                        imgs = z[f"x_{split}"]
                    elif {f"x_{split}_jpeg", f"x_{split}_offsets"} <= keys:
                        imgs = Jpegs(z[f"x_{split}_jpeg"], z[f"x_{split}_offsets"], path)
                    else:
                        msg = f"x_{split} (or x_{split}_jpeg + x_{split}_offsets)"
                        raise KeyError(msg)
                    if f"y_{split}" not in keys:
                        msg = f"y_{split}"
                        raise KeyError(msg)
                    out[split] = (imgs, z[f"y_{split}"])
                out["classes"] = [str(c) for c in z["classes"]] if "classes" in keys else list(INFO[name].classes)
    except KeyError as e:
        msg = f"{path}: missing key {e.args[0]}; the pack has {sorted(keys)}"
        raise ValueError(msg) from None
    except (zipfile.BadZipFile, zlib.error, OSError, EOFError, ValueError) as e:
        msg = f"{path}: corrupt, truncated or not an .npz pack ({type(e).__name__}: {e})"
        raise ValueError(msg) from None
    if len(out["classes"]) != len(list(INFO[name].classes)):
        msg = f"{path}: 'classes' has {len(out['classes'])} names, expected {len(list(INFO[name].classes))}"
        raise ValueError(msg)
    for split in ("train", "test"):
        _check_split(path, split, *out[split], name)
    return out


def _check_split(path, split, imgs, y, name):
    """Raise ValueError if the images and labels of a split are malformed or inconsistent."""
    c, h, w = INFO[name].shape
    if isinstance(imgs, Jpegs):
        off, size = imgs.offsets, len(imgs.buf)
        if imgs.buf.dtype != np.uint8 or imgs.buf.ndim != 1 or off.ndim != 1 or len(off) < 1 \
                or off.dtype.kind not in "iu" or off[0] < 0 or off[-1] > size or np.any(np.diff(off) <= 0):
            msg = (f"{path}: x_{split}_offsets must be increasing integers within the "
                   f"1-D uint8 x_{split}_jpeg buffer ({size} bytes)")
            raise ValueError(msg)
    else:
        s = imgs.shape
        ok = imgs.dtype == np.uint8 and s[1:] in [(h, w), (h, w, c), (c, h, w)]
        if not ok:
            raise ValueError(f"{path}: x_{split} is {imgs.dtype} {s}, expected uint8 N×{h}×{w}"
                             + (f"×{c} or N×{c}×{h}×{w}" if c > 1 else ""))
    if y.ndim != 1 or len(y) != len(imgs):
        msg = f"{path}: y_{split} has shape {y.shape} but there are {len(imgs)} x_{split} images"
        raise ValueError(msg)
    if y.dtype.kind not in "iu" or (len(y) and (y.min() < 0 or y.max() >= len(list(INFO[name].classes)))):
        msg = f"{path}: y_{split} must hold integer labels in 0..{len(list(INFO[name].classes)) - 1}"
        raise ValueError(msg)


def read_torchvision(name, root, download=False):
    """Read a dataset with torchvision.datasets from `root` (its own layout), using .data/.targets arrays."""
    cls = getattr(torchvision.datasets, INFO[name].tv_class)
    out = {"classes": list(INFO[name].classes)}
    for split in ("train", "test"):
        ds = cls(str(root), train=split == "train", download=download)
        out[split] = (np.asarray(ds.data, dtype=np.uint8), np.asarray(ds.targets, dtype=np.int64))
    return out


def find_raw(name, data_dir=None, download=None):
    """Return (raw splits, source) from the first place that has `name`; else raise DataNotFoundError."""
    looked, root = [], data_dir or os.environ.get(DATA_ENV)
    if root:
        root = Path(root).expanduser()
        pack = root / f"{name}.npz"
        if pack.is_file():
            return read_pack(pack, name), str(pack)
        looked.append(f"{pack} (pack): not found")
        try:
            return read_torchvision(name, root), f"torchvision:{root / INFO[name].tv_dir}"
        except RuntimeError:  # torchvision's "Dataset not found (or corrupted)"
            looked.append(f"{root / INFO[name].tv_dir} (torchvision layout): not found, incomplete or bad md5")
    else:
        looked.append(f"data_dir argument / ${DATA_ENV}: not set")
    cache, dl = cache_dir(), download is not False  # None: download only if missing (torchvision checks)
    try:
        return read_torchvision(name, cache, download=dl), f"torchvision:{cache / INFO[name].tv_dir}"
    except Exception as e:  # offline downloads fail in many ways (URLError, RuntimeError, OSError...)
        why = "download failed: " + " ".join(str(e).split())[:300] if dl else "not found (download=False)"
        looked.append(f"{cache / INFO[name].tv_dir} (torchvision cache): {why}")
    raise DataNotFoundError(
        f"dataset {name!r} not found. Looked in:\n" + "".join(f"  - {p}\n" for p in looked)
        + f"To fix: set {DATA_ENV} to a folder holding {name}.npz (export {DATA_ENV}=/path/to/data), "
        f"or pass data_dir=..., or go online so torchvision can download it into {cache} "
        f"(set {CACHE_ENV} to change that folder).")


# ---------------------------------------------------------------- subsets and tensors

def balanced_indices(y, n, num_classes, seed):
    """Indices of `n` samples, balanced over classes (remainder to the first classes), shuffled; None = all."""
    if n is None:
        return np.arange(len(y))
    if not 0 < n <= len(y):
        msg = f"asked for {n} samples but only {len(y)} are available"
        raise ValueError(msg)
    rng = np.random.default_rng(seed)
    by_class = [np.flatnonzero(y == c) for c in range(num_classes)]
    counts = np.array([len(i) for i in by_class])
    level = n // num_classes  # per-class quota; raised while short classes leave samples to share out
    while level < counts.max() and np.minimum(counts, level + 1).sum() <= n:
        level += 1
    quota = np.minimum(counts, level)
    quota[np.flatnonzero(counts > level)[:n - quota.sum()]] += 1  # remainder to the first classes
    idx = np.concatenate([rng.permutation(i)[:q] for i, q in zip(by_class, quota, strict=True)])
    return rng.permutation(idx)


def nchw(x, channels):
    """A uint8 array N×H×W, N×H×W×C or N×C×H×W as a uint8 tensor N×C×H×W."""
    x = torch.from_numpy(np.ascontiguousarray(x))
    if x.ndim == 3:
        return x.unsqueeze(1)
    return x if x.shape[1] == channels else x.permute(0, 3, 1, 2).contiguous()


def select(imgs, idx, name):
    """Images `idx` as a uint8 tensor N×C×H×W (decoding JPEGs only for those)."""
    c, h, w = INFO[name].shape
    if not isinstance(imgs, Jpegs):
        return nchw(imgs[idx], c)
    x = imgs.decode(idx, c)
    if x.shape[1:] != (c, h, w):
        msg = f"{imgs.path}: JPEGs decode to {tuple(x.shape[1:])}, expected {(c, h, w)}"
        raise ValueError(msg)
    return x


def normalize(x, name):
    """uint8 N×C×H×W -> float32 scaled to [0, 1] then standardised with the dataset's mean/std."""
    mean, std = (torch.tensor(s).view(1, -1, 1, 1) for s in INFO[name].stats)
    return x.float().div_(255).sub_(mean).div_(std)


VAL_SEED = 0  # the validation split is the same for every run, whatever its seed


def validation_indices(y, fraction, num_classes):
    """(train, validation) indices: a class-balanced `fraction` of the training set, fixed by VAL_SEED."""
    if not 0 < fraction < 1:
        msg = f"the validation fraction must be between 0 and 1, got {fraction}"
        raise ValueError(msg)
    val = np.sort(balanced_indices(y, round(fraction * len(y)), num_classes, seed=(VAL_SEED, 2)))
    return np.setdiff1d(np.arange(len(y)), val), val


def load_data(name: str, n_train: int | None = None, n_test: int | None = None, data_dir: Path | str | None = None,
              seed: int = 42, download: bool | None = None, val_fraction: float = 0.0) -> Data:
    """Load a dataset as normalised tensors, with optional class-balanced subsets of train/test. With
    `val_fraction`, a class-balanced validation split is first carved from the training set (the same for every
    seed; see `validation_indices`), and `n_train` counts what is left. The book's protocol is explained in
    chapter 7."""
    name = resolve_name(name)
    raw, source = find_raw(name, data_dir, download)
    out = {}
    imgs, y = raw["train"]
    pool = np.arange(len(y))
    if val_fraction:
        pool, val = validation_indices(y, val_fraction, len(raw["classes"]))
        out["x_val"], out["y_val"] = normalize(select(imgs, val, name), name), torch.from_numpy(y[val].astype(np.int64))
    for i, (split, n) in enumerate((("train", n_train), ("test", n_test))):
        imgs, y = raw[split]
        where = pool if split == "train" else np.arange(len(y))
        idx = where[balanced_indices(y[where], n, len(raw["classes"]), seed=(seed, i))]
        out[f"x_{split}"] = normalize(select(imgs, idx, name), name)
        out[f"y_{split}"] = torch.from_numpy(y[idx].astype(np.int64))
    return Data(name=name, classes=list(raw["classes"]), source=source, **out)


# ---------------------------------------------------------------- batches

class TensorLoader:
    """Serve (x, y) minibatches straight from tensors held on `device`; no per-sample transforms."""
    def __init__(self, x: Tensor | np.ndarray, y: Tensor | np.ndarray, batch_size: int, shuffle: bool = False,
                 seed: int = 0, device: torch.device | str = "cpu", drop_last: bool = False) -> None:
        if len(x) != len(y):
            msg = f"x has {len(x)} samples but y has {len(y)}"
            raise ValueError(msg)
        if batch_size < 1:
            msg = f"batch_size must be >= 1, got {batch_size}"
            raise ValueError(msg)
        self.x, self.y = torch.as_tensor(x).to(device), torch.as_tensor(y).to(device)
        self.batch_size, self.shuffle, self.seed, self.drop_last = batch_size, shuffle, seed, drop_last
        self.epoch = 0  # bumped by each __iter__; the shuffle of epoch e uses seed + e

    def __len__(self) -> int:
        n = len(self.x) / self.batch_size
        return math.floor(n) if self.drop_last else math.ceil(n)

    def __iter__(self) -> Iterator[tuple[Tensor, Tensor]]:
        idx = None
        if self.shuffle:
            g = torch.Generator().manual_seed(self.seed + self.epoch)
            idx = torch.randperm(len(self.x), generator=g).to(self.x.device)
        self.epoch += 1
        b = self.batch_size
        for i in range(len(self)):
            j = slice(i * b, (i + 1) * b) if idx is None else idx[i * b:(i + 1) * b]
            yield self.x[j], self.y[j]


def load_loaders(name: str, batch_size: int, n_train: int | None = None, n_test: int | None = None,
                 data_dir: Path | str | None = None, seed: int = 42, device: torch.device | str = "cpu",
                 download: bool | None = None, val_fraction: float = 0.0) -> tuple[TensorLoader, TensorLoader, Data]:
    """Return (train_iter, test_iter, data): train shuffled with `seed`, test in order. With `val_fraction`,
    `data.val_iter` serves the validation split (in order)."""
    data = load_data(name, n_train, n_test, data_dir, seed, download, val_fraction)
    train = TensorLoader(data.x_train, data.y_train, batch_size, shuffle=True, seed=seed, device=device)
    test = TensorLoader(data.x_test, data.y_test, batch_size, shuffle=False, device=device)
    data.val_iter = None if data.x_val is None else TensorLoader(data.x_val, data.y_val, batch_size, device=device)
    return train, test, data
