"""Tests for qt_helpers.data: real packs (if QT_DATA_DIR is set), synthetic packs, torchvision layout, loaders."""
import hashlib
import os
import pickle
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision
from torchvision.io import encode_jpeg

from qt_helpers import data as D

# ---------------------------------------------------------------- helpers


def unnorm(x, name):
    """Undo the normalisation: float N×C×H×W -> integer pixel values 0..255."""
    mean, std = (torch.tensor(s).view(1, -1, 1, 1) for s in D.INFO[name].stats)
    return ((x * std + mean) * 255).round().to(torch.int64)


def images(n, name, start=0):
    """n constant images N×C×H×W, image i has pixel value 10*(start+i) % 250 (+ offsets per channel)."""
    c, h, w = D.INFO[name].shape
    v = (10 * (start + torch.arange(n))) % 250
    x = v.view(-1, 1, 1, 1) + torch.tensor([0, 3, 5][:c]).view(1, -1, 1, 1)
    return x.expand(n, c, h, w).to(torch.uint8).contiguous()


def jpeg_arrays(x):
    """Encode uint8 N×C×H×W as (concatenated JPEG bytes, offsets), the pack's encoded form."""
    with warnings.catch_warnings():  # torchvision 0.29 deprecates its codecs (for TorchCodec); still fine here
        warnings.simplefilter("ignore", DeprecationWarning)
        files = [encode_jpeg(img, quality=95).numpy() for img in x]
    offsets = np.concatenate([[0], np.cumsum([len(f) for f in files])]).astype(np.int64)
    return np.concatenate(files), offsets


def write_pack(path, name, n_train=20, n_test=10, form="decoded", drop=(), **override):
    """Write a tiny pack; labels are i % 10 so every class appears; returns the arrays written."""
    arrays = {"classes": np.array(list(D.INFO[name].classes))}
    for split, n, start in (("train", n_train, 0), ("test", n_test, 7)):
        x = images(n, name, start)
        if form == "jpeg":
            arrays[f"x_{split}_jpeg"], arrays[f"x_{split}_offsets"] = jpeg_arrays(x)
        else:  # decoded: N×H×W for grayscale, N×H×W×C (HWC) for colour
            arrays[f"x_{split}"] = x[:, 0].numpy() if x.shape[1] == 1 else x.permute(0, 2, 3, 1).numpy()
        arrays[f"y_{split}"] = (np.arange(n) % 10).astype(np.uint8)
        arrays[f"_x_{split}"] = x
    arrays.update(override)
    np.savez(path, **{k: v for k, v in arrays.items() if k not in drop and not k.startswith("_")})
    return arrays


@pytest.fixture
def real_dir():
    """The folder of real packs from env QT_DATA_DIR; skip if unset or missing."""
    d = os.environ.get(D.DATA_ENV)
    if not d or not Path(d).is_dir():
        pytest.skip(f"real data tests need env {D.DATA_ENV} pointing to the data folder (e.g. /work/shared/data)")
    return Path(d)


@pytest.fixture(autouse=True)
def offline_cache(tmp_path, monkeypatch):
    """Point the torchvision cache at an empty tmp folder so no test touches ~/.cache."""
    monkeypatch.setenv(D.CACHE_ENV, str(tmp_path / "cache"))


# ---------------------------------------------------------------- real packs


@pytest.mark.parametrize(("name", "n_train", "n_test"), [("mnist", 60000, 10000), ("fashion_mnist", 60000, 10000)])
def test_real_full_grayscale(real_dir, name, n_train, n_test):
    d = D.load_data(name, data_dir=real_dir)
    assert d.name == name
    assert len(d.classes) == 10
    assert d.x_train.shape == (n_train, 1, 28, 28)
    assert d.x_test.shape == (n_test, 1, 28, 28)
    assert d.x_train.dtype == torch.float32
    assert d.y_train.dtype == torch.int64
    assert d.y_test.dtype == torch.int64
    assert abs(d.x_train.mean().item()) < 0.01
    assert abs(d.x_train.std().item() - 1) < 0.01
    assert d.y_train.min() == 0
    assert d.y_train.max() == 9
    assert d.y_test.min() == 0
    assert d.y_test.max() == 9


def test_real_cifar_subset(real_dir):
    d = D.load_data("cifar-10", n_train=2000, n_test=500, data_dir=real_dir)
    assert d.name == "cifar10"
    assert d.classes[0] == "airplane"
    assert d.classes[-1] == "truck"
    assert d.x_train.shape == (2000, 3, 32, 32)
    assert d.x_test.shape == (500, 3, 32, 32)
    assert d.x_train.dtype == torch.float32
    assert d.y_train.dtype == torch.int64
    mean, std = d.x_train.mean((0, 2, 3)), d.x_train.std((0, 2, 3))
    assert mean.abs().max() < 0.1
    assert (std - 1).abs().max() < 0.1
    assert d.x_train.min() >= -2.1
    assert d.x_train.max() <= 2.2  # what 0..255 maps to
    assert d.y_test.min() >= 0
    assert d.y_test.max() <= 9


@pytest.mark.parametrize("name", D.DATASETS)
def test_real_subsets_balanced_and_deterministic(real_dir, name):
    a = D.load_data(name, n_train=1003, n_test=200, data_dir=real_dir, seed=1)
    assert torch.bincount(a.y_train, minlength=10).tolist() == [101] * 3 + [100] * 7
    assert torch.bincount(a.y_test, minlength=10).tolist() == [20] * 10
    assert not torch.equal(a.y_train[:50], a.y_train[:50].sort().values)  # shuffled, not grouped by class
    b = D.load_data(name, n_train=1003, n_test=200, data_dir=real_dir, seed=1)
    assert torch.equal(a.x_train, b.x_train)
    assert torch.equal(a.y_train, b.y_train)
    assert torch.equal(a.x_test, b.x_test)
    c = D.load_data(name, n_train=1003, n_test=200, data_dir=real_dir, seed=2)
    assert not torch.equal(a.x_train, c.x_train)
    assert not torch.equal(a.x_test, c.x_test)


def test_real_too_many_samples(real_dir):
    with pytest.raises(ValueError, match="only 10000"):
        D.load_data("mnist", n_test=10001, data_dir=real_dir)


# ---------------------------------------------------------------- names


@pytest.mark.parametrize(("alias", "name"), [("MNIST", "mnist"), ("FashionMNIST", "fashion_mnist"),
                                        ("fashion-mnist", "fashion_mnist"), ("Fashion_MNIST", "fashion_mnist"),
                                        ("CIFAR-10", "cifar10"), ("cifar", "cifar10"), ("cifar10", "cifar10")])
def test_resolve_name(alias, name):
    assert D.resolve_name(alias) == name


def test_unknown_name_lists_valid_names():
    with pytest.raises(ValueError, match="'svhn'") as e:
        D.load_data("svhn")
    assert "'svhn'" in str(e.value)
    assert all(n in str(e.value) for n in D.DATASETS)


# ---------------------------------------------------------------- synthetic packs


@pytest.mark.parametrize("name", D.DATASETS)
def test_decoded_pack_exact(tmp_path, name):
    written = write_pack(tmp_path / f"{name}.npz", name)
    d = D.load_data(name, data_dir=tmp_path)
    assert d.source == str(tmp_path / f"{name}.npz")
    assert d.classes == list(D.INFO[name].classes)
    assert d.x_train.shape == (20, *D.INFO[name].shape)
    assert d.x_train.dtype == torch.float32
    assert torch.equal(unnorm(d.x_train, name), written["_x_train"].long())  # full set keeps the order
    assert torch.equal(unnorm(d.x_test, name), written["_x_test"].long())
    assert d.y_train.tolist() == [i % 10 for i in range(20)]
    assert d.y_test.dtype == torch.int64


@pytest.mark.parametrize("name", ["cifar10", "mnist"])
@pytest.mark.parametrize("use_pil", [False, True])
def test_jpeg_pack(tmp_path, monkeypatch, name, use_pil):
    if use_pil:  # the fallback used if a future torchvision drops decode_jpeg
        monkeypatch.setattr(D, "decode_jpeg", None)
    written = write_pack(tmp_path / f"{name}.npz", name, form="jpeg")
    d = D.load_data(name, data_dir=tmp_path)
    assert d.x_train.shape == (20, *D.INFO[name].shape)
    assert d.x_test.shape == (10, *D.INFO[name].shape)
    assert (unnorm(d.x_train, name) - written["_x_train"].long()).abs().max() <= 3  # JPEG is lossy
    assert (unnorm(d.x_test, name) - written["_x_test"].long()).abs().max() <= 3
    assert d.y_test.tolist() == [i % 10 for i in range(10)]


def test_jpeg_subset_decodes_only_selection_and_keeps_labels(tmp_path, monkeypatch):
    write_pack(tmp_path / "cifar10.npz", "cifar10", n_train=25, form="jpeg")  # 25 distinct pixel values
    sizes = []
    real_decode = D.decode_jpeg
    monkeypatch.setattr(D, "decode_jpeg", lambda imgs, **kw: sizes.append(len(imgs)) or real_decode(imgs, **kw))
    d = D.load_data("cifar", n_train=10, n_test=5, data_dir=tmp_path)
    assert sizes == [10, 5]
    assert torch.bincount(d.y_train, minlength=10).tolist() == [1] * 10
    # image i has red value 10*i and label i % 10, so pixels and labels must still agree
    idx = unnorm(d.x_train, "cifar10")[:, 0, 0, 0].float().div(10).round().long()
    assert torch.equal(idx % 10, d.y_train)


def test_subset_refills_from_other_classes(tmp_path):
    y = np.array([0] + [c for c in range(1, 10) for _ in range(5)], dtype=np.uint8)  # class 0 has 1 sample
    write_pack(tmp_path / "mnist.npz", "mnist", n_train=len(y), y_train=y)
    d = D.load_data("mnist", n_train=12, data_dir=tmp_path)
    counts = torch.bincount(d.y_train, minlength=10)
    assert counts.tolist() == [1, 2, 2, 1, 1, 1, 1, 1, 1, 1]  # 11 shared as evenly as possible over classes 1-9
    d = D.load_data("mnist", n_train=len(y), data_dir=tmp_path)
    assert sorted(d.y_train.tolist()) == sorted(y.tolist())


def test_env_var_used_and_data_dir_wins(tmp_path, monkeypatch):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    write_pack(tmp_path / "a" / "mnist.npz", "mnist", n_train=20)
    write_pack(tmp_path / "b" / "mnist.npz", "mnist", n_train=30)
    monkeypatch.setenv(D.DATA_ENV, str(tmp_path / "a"))
    assert len(D.load_data("mnist").y_train) == 20
    assert len(D.load_data("mnist", data_dir=tmp_path / "b").y_train) == 30


def test_truncated_pack_is_clear_value_error(tmp_path):
    path = tmp_path / "mnist.npz"
    write_pack(path, "mnist")
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(ValueError, match="corrupt, truncated") as e:
        D.load_data("mnist", data_dir=tmp_path)
    assert str(path) in str(e.value)


def test_pack_missing_key(tmp_path):
    write_pack(tmp_path / "fashion_mnist.npz", "fashion_mnist", drop=("y_test",))
    with pytest.raises(ValueError, match="missing key y_test") as e:
        D.load_data("fashion_mnist", data_dir=tmp_path)
    assert "fashion_mnist.npz" in str(e.value)


@pytest.mark.parametrize(("override", "match"), [
    ({"y_train": np.zeros(19, np.uint8)}, "y_train has shape"),
    ({"x_test": np.zeros((10, 32, 32), np.uint8)}, "x_test is uint8"),
    ({"y_test": np.full(10, 10, np.uint8)}, "labels in 0..9"),
    ({"classes": np.array(["a", "b", None], dtype=object)}, "corrupt"),  # would need pickle: refused
])
def test_pack_bad_contents(tmp_path, override, match):
    write_pack(tmp_path / "mnist.npz", "mnist", **override)
    with pytest.raises(ValueError, match=match):
        D.load_data("mnist", data_dir=tmp_path)


def test_bad_jpeg_offsets(tmp_path):
    written = write_pack(tmp_path / "cifar10.npz", "cifar10", form="jpeg")
    off = written["x_train_offsets"].copy()
    off[-1] += 1000  # points past the end of the buffer
    write_pack(tmp_path / "cifar10.npz", "cifar10", form="jpeg", x_train_offsets=off)
    with pytest.raises(ValueError, match="x_train_offsets"):
        D.load_data("cifar10", data_dir=tmp_path)


def test_corrupt_jpeg_bytes(tmp_path):
    written = write_pack(tmp_path / "cifar10.npz", "cifar10", form="jpeg")
    buf = written["x_test_jpeg"].copy()
    buf[:] = 7  # right size, not JPEG data
    write_pack(tmp_path / "cifar10.npz", "cifar10", form="jpeg", x_test_jpeg=buf)
    with pytest.raises(ValueError, match="cannot decode JPEG") as e:
        D.load_data("cifar10", data_dir=tmp_path)
    assert "cifar10.npz" in str(e.value)


def test_missing_data_offline(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(D.DataNotFoundError) as e:
        D.load_data("Fashion-MNIST", data_dir=empty, download=False)
    msg = str(e.value)
    assert isinstance(e.value, FileNotFoundError)
    assert "'fashion_mnist'" in msg
    assert str(empty / "fashion_mnist.npz") in msg
    assert str(empty / "FashionMNIST" / "raw") in msg
    assert str(tmp_path / "cache" / "FashionMNIST" / "raw") in msg
    assert D.DATA_ENV in msg
    assert "data_dir=" in msg
    assert "download" in msg


# ---------------------------------------------------------------- torchvision on-disk layout


def write_idx(path, arr):
    """Write a uint8 array as an uncompressed IDX file (big-endian header: magic 0x08 ndim, then dims)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    header = bytes([0, 0, 8, arr.ndim]) + b"".join(int(s).to_bytes(4, "big") for s in arr.shape)
    path.write_bytes(header + arr.astype(np.uint8).tobytes())


@pytest.mark.parametrize(("name", "folder"), [("mnist", "MNIST"), ("fashion_mnist", "FashionMNIST")])
def test_torchvision_mnist_layout(tmp_path, name, folder):
    # torchvision.datasets.MNIST reads the decompressed files <root>/<Class>/raw/{train,t10k}-*-ubyte (no md5 check)
    rng = np.random.default_rng(0)
    x = {"train": rng.integers(0, 256, (20, 28, 28)), "t10k": rng.integers(0, 256, (10, 28, 28))}
    y = {"train": np.arange(20) % 10, "t10k": rng.permutation(10)}
    for s in ("train", "t10k"):
        write_idx(tmp_path / folder / "raw" / f"{s}-images-idx3-ubyte", x[s])
        write_idx(tmp_path / folder / "raw" / f"{s}-labels-idx1-ubyte", y[s])
    d = D.load_data(name, data_dir=tmp_path, download=False)
    assert d.source.startswith("torchvision:")
    assert d.classes == list(D.INFO[name].classes)
    assert torch.equal(unnorm(d.x_train, name)[:, 0], torch.from_numpy(x["train"]))
    assert torch.equal(unnorm(d.x_test, name)[:, 0], torch.from_numpy(x["t10k"]))
    assert d.y_train.tolist() == y["train"].tolist()
    assert d.y_test.tolist() == y["t10k"].tolist()


def test_torchvision_cifar_layout(tmp_path, monkeypatch):
    rng = np.random.default_rng(0)
    root = tmp_path / "cifar-10-batches-py"
    root.mkdir()

    def dump(fname, obj):
        (root / fname).write_bytes(pickle.dumps(obj))
        return [fname, hashlib.md5((root / fname).read_bytes()).hexdigest()]

    batches = [(rng.integers(0, 256, (4, 3072), dtype=np.uint8), list(rng.integers(0, 10, 4))) for _ in range(6)]
    train_list = [dump(f"data_batch_{i + 1}", {"data": x, "labels": y}) for i, (x, y) in enumerate(batches[:5])]
    test_list = [dump("test_batch", {"data": batches[5][0], "labels": batches[5][1]})]
    meta = dump("batches.meta", {"label_names": list(D.INFO["cifar10"].classes)})
    # torchvision checks each file's md5 against the official CIFAR-10 archive. Our tiny files can't match, so
    # we register their real md5s instead: the integrity check still runs, only the expected sums change.
    monkeypatch.setattr(torchvision.datasets.CIFAR10, "train_list", train_list)
    monkeypatch.setattr(torchvision.datasets.CIFAR10, "test_list", test_list)
    monkeypatch.setattr(torchvision.datasets.CIFAR10, "meta", {"filename": meta[0], "key": "label_names",
                                                               "md5": meta[1]})
    d = D.load_data("cifar10", data_dir=tmp_path, download=False)
    assert d.source == f"torchvision:{root}"
    x_train = np.concatenate([x for x, _ in batches[:5]]).reshape(20, 3, 32, 32)  # rows are R, G, B planes
    assert torch.equal(unnorm(d.x_train, "cifar10"), torch.from_numpy(x_train).long())
    assert torch.equal(unnorm(d.x_test, "cifar10"), torch.from_numpy(batches[5][0].reshape(4, 3, 32, 32)).long())
    assert d.y_train.tolist() == [int(v) for _, y in batches[:5] for v in y]
    assert d.y_test.tolist() == [int(v) for v in batches[5][1]]


# ---------------------------------------------------------------- TensorLoader


def epoch_labels(loader):
    """Concatenated y of one pass, checking x and y stay aligned (x = y as float)."""
    ys = []
    for xb, yb in loader:
        assert torch.equal(xb[:, 0].long(), yb)
        ys.append(yb)
    return torch.cat(ys)


def toy(n=23):
    return torch.arange(n).float().unsqueeze(1), torch.arange(n)


def test_loader_covers_every_sample_once():
    loader = D.TensorLoader(*toy(), batch_size=5, shuffle=True, seed=3)
    assert len(loader) == 5
    assert [len(yb) for _, yb in loader] == [5, 5, 5, 5, 3]
    assert epoch_labels(loader).sort().values.tolist() == list(range(23))


def test_loader_no_shuffle_keeps_order():
    loader = D.TensorLoader(*toy(), batch_size=10)
    assert epoch_labels(loader).tolist() == list(range(23))
    assert epoch_labels(loader).tolist() == list(range(23))


def test_loader_shuffle_differs_per_epoch_reproducible_by_seed():
    a, b, c = (D.TensorLoader(*toy(), batch_size=4, shuffle=True, seed=s) for s in (7, 7, 8))
    a1, a2 = epoch_labels(a), epoch_labels(a)
    assert not torch.equal(a1, a2)
    assert torch.equal(a1, epoch_labels(b))
    assert torch.equal(a2, epoch_labels(b))
    assert not torch.equal(a1, epoch_labels(c))


def test_loader_drop_last():
    loader = D.TensorLoader(*toy(), batch_size=5, shuffle=True, drop_last=True)
    assert len(loader) == 4
    assert [len(yb) for _, yb in loader] == [5] * 4
    assert len(set(epoch_labels(loader).tolist())) == 20


def test_loader_errors_and_device():
    with pytest.raises(ValueError, match="23 samples but y has 22"):
        D.TensorLoader(toy()[0], toy(22)[1], batch_size=4)
    loader = D.TensorLoader(*toy(), batch_size=4, device="cpu")
    assert loader.x.device.type == "cpu"
    assert next(iter(loader))[0].shape == (4, 1)


def test_load_loaders(tmp_path):
    write_pack(tmp_path / "mnist.npz", "mnist", n_train=20, n_test=10)
    train, test, d = D.load_loaders("mnist", batch_size=8, n_train=10, data_dir=tmp_path)
    assert len(train) == 2
    assert len(test) == 2
    assert d.x_train.shape == (10, 1, 28, 28)
    xb, yb = next(iter(train))
    assert xb.shape == (8, 1, 28, 28)
    assert yb.dtype == torch.int64
    assert torch.equal(torch.cat([yb for _, yb in test]), d.y_test)  # test loader keeps order


def test_validation_split_is_balanced_disjoint_and_the_same_for_every_seed(pack_dir):
    a = D.load_data("mnist", data_dir=pack_dir, seed=1, val_fraction=0.1)
    b = D.load_data("mnist", n_train=90, data_dir=pack_dir, seed=2, val_fraction=0.1)
    assert len(a.y_val) == 20
    assert len(a.y_train) == 180
    assert len(b.y_train) == 90
    assert torch.bincount(a.y_val, minlength=10).tolist() == [2] * 10  # class-balanced
    assert torch.equal(a.x_val, b.x_val)
    assert torch.equal(a.y_val, b.y_val)  # fixed, whatever the run's seed
    val = {tuple(x.flatten().tolist()) for x in a.x_val}
    assert not val & {tuple(x.flatten().tolist()) for x in a.x_train}  # never trained on
    assert not val & {tuple(x.flatten().tolist()) for x in b.x_train}
    assert D.load_data("mnist", data_dir=pack_dir).x_val is None
    with pytest.raises(ValueError, match="between 0 and 1"):
        D.load_data("mnist", data_dir=pack_dir, val_fraction=1.5)


@pytest.mark.parametrize("name", D.DATASETS)
def test_the_dataset_table_names_the_reference_cnn_and_its_size(name):
    from qt_helpers import models

    fact = D.info(name)
    net = models.cnn(name)
    assert type(net).__name__ == fact.cnn
    assert models.num_params(net) == fact.cnn_params
    assert len(fact.classes) == 10
    assert len(fact.stats[0]) == fact.shape[0]
