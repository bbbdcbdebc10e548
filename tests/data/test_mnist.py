"""Tests for jaxvision.data.mnist: IDX parsing, directory/env/TFDS resolution, the source."""

import gzip
import os
import sys
import types
from pathlib import Path

import numpy as np
import pytest

from jaxvision.data import mnist as mnist_lib
from jaxvision.data.mnist import (ENV_VAR, IMAGES_MAGIC, LABELS_MAGIC, MnistSource, load_mnist,
                                  read_idx)

REAL_DIR = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "mnist"
TRAIN_COUNTS = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
TEST_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]


def idx_bytes(arr: np.ndarray, type_code: int = 0x08) -> bytes:
  """An IDX file for ``arr``, written independently of the reader (big-endian)."""
  be = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
  header = bytes([0, 0, type_code, arr.ndim]) + b"".join(
      int(d).to_bytes(4, "big") for d in arr.shape)
  return header + np.ascontiguousarray(arr, dtype=be[type_code]).tobytes()


def write_split(directory: Path, split: str, images: np.ndarray, labels: np.ndarray, *,
                gz: bool) -> None:
  directory.mkdir(parents=True, exist_ok=True)
  prefix = {"train": "train", "test": "t10k"}[split]
  for stem, arr in ((f"{prefix}-images-idx3-ubyte", images),
                    (f"{prefix}-labels-idx1-ubyte", labels)):
    data = idx_bytes(arr)
    if gz:
      (directory / (stem + ".gz")).write_bytes(gzip.compress(data))
    else:
      (directory / stem).write_bytes(data)


def synthetic(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
  rng = np.random.default_rng(seed)
  return (rng.integers(0, 256, (n, 28, 28), dtype=np.uint8),
          rng.integers(0, 10, n).astype(np.uint8))


@pytest.fixture
def no_env(monkeypatch):
  monkeypatch.delenv(ENV_VAR, raising=False)


@pytest.fixture
def no_tfds(monkeypatch):
  monkeypatch.setitem(sys.modules, "tensorflow_datasets", None)  # import -> ImportError


# ---------------------------------------------------------------------------------------------
# read_idx


@pytest.mark.parametrize("type_code,dtype,shape", [
    (0x08, np.uint8, (3, 4, 5)), (0x09, np.int8, (7,)), (0x0B, np.int16, (2, 3)),
    (0x0C, np.int32, (4, 1)), (0x0D, np.float32, (2, 2, 2)), (0x0E, np.float64, (3,)),
    (0x08, np.uint8, (0, 28, 28)),
])
@pytest.mark.parametrize("gz", [False, True])
def test_read_idx_round_trip(tmp_path, type_code, dtype, shape, gz):
  rng = np.random.default_rng(0)
  arr = (rng.normal(size=shape) * 50).astype(dtype)
  data = idx_bytes(arr, type_code)
  path = tmp_path / "f"
  path.write_bytes(gzip.compress(data) if gz else data)
  out = read_idx(path)
  assert out.dtype == np.dtype(dtype) and out.dtype.isnative
  assert out.shape == shape
  np.testing.assert_array_equal(out, arr)
  out[...] = 0  # writable, owns its memory


@pytest.mark.parametrize("gz", [False, True])
def test_read_idx_rejects_bad_magic(tmp_path, gz):
  images, labels = synthetic(2, 0)
  path = tmp_path / "f"
  data = idx_bytes(labels)
  path.write_bytes(gzip.compress(data) if gz else data)
  with pytest.raises(ValueError, match="bad magic number 2049, expected 2051"):
    read_idx(path, magic=IMAGES_MAGIC)
  np.testing.assert_array_equal(read_idx(path, magic=LABELS_MAGIC), labels)
  for bad in (b"\x01\x00\x08\x01", b"\x00\x00\x07\x01", b"PK\x03\x04"):
    path.write_bytes(bad + data[4:])
    with pytest.raises(ValueError, match="magic"):
      read_idx(path)


@pytest.mark.parametrize("cut", [0, 2, 6, 16, 100, -1])
def test_read_idx_rejects_truncated_raw(tmp_path, cut):
  images, _ = synthetic(2, 1)
  data = idx_bytes(images)
  path = tmp_path / "f"
  path.write_bytes(data[:cut])
  with pytest.raises(ValueError, match="truncated"):
    read_idx(path)


def test_read_idx_rejects_truncated_gzip_and_trailing_bytes(tmp_path):
  images, _ = synthetic(3, 2)
  data = idx_bytes(images)
  path = tmp_path / "f.gz"
  compressed = gzip.compress(data)
  path.write_bytes(compressed[:len(compressed) // 2])
  with pytest.raises(ValueError, match="gzip"):
    read_idx(path)
  path.write_bytes(gzip.compress(data[:-10]))  # valid gzip, truncated IDX inside
  with pytest.raises(ValueError, match="truncated"):
    read_idx(path)
  path.write_bytes(data + b"\x00\x01")
  with pytest.raises(ValueError, match="trailing"):
    read_idx(path)


# ---------------------------------------------------------------------------------------------
# load_mnist from directories


@pytest.mark.parametrize("gz", [False, True])
def test_load_mnist_from_data_dir(tmp_path, gz, no_env):
  tr_images, tr_labels = synthetic(5, 3)
  te_images, te_labels = synthetic(3, 4)
  write_split(tmp_path, "train", tr_images, tr_labels, gz=gz)
  write_split(tmp_path, "test", te_images, te_labels, gz=gz)
  for split, images, labels in (("train", tr_images, tr_labels),
                                ("test", te_images, te_labels)):
    out_images, out_labels = load_mnist(split, data_dir=tmp_path)
    assert out_images.dtype == np.uint8 and out_images.shape == (len(labels), 28, 28)
    assert out_labels.dtype == np.int32 and out_labels.shape == (len(labels),)
    np.testing.assert_array_equal(out_images, images)
    np.testing.assert_array_equal(out_labels, labels)
  all_images, all_labels = load_mnist("all", data_dir=str(tmp_path))
  np.testing.assert_array_equal(all_images, np.concatenate([tr_images, te_images]))
  np.testing.assert_array_equal(all_labels, np.concatenate([tr_labels, te_labels]))


def test_load_mnist_gzip_detected_by_content(tmp_path, no_env):
  images, labels = synthetic(2, 5)
  # Gzip data under the raw name, raw data under the dotted variant name.
  (tmp_path / "t10k-images-idx3-ubyte").write_bytes(gzip.compress(idx_bytes(images)))
  (tmp_path / "t10k-labels.idx1-ubyte").write_bytes(idx_bytes(labels))
  out_images, out_labels = load_mnist("test", data_dir=tmp_path)
  np.testing.assert_array_equal(out_images, images)
  np.testing.assert_array_equal(out_labels, labels)


def test_load_mnist_mnist_subdir_and_env_var(tmp_path, monkeypatch, no_tfds):
  images, labels = synthetic(4, 6)
  write_split(tmp_path / "mnist", "test", images, labels, gz=True)
  np.testing.assert_array_equal(load_mnist("test", data_dir=tmp_path)[0], images)
  monkeypatch.setenv(ENV_VAR, str(tmp_path))  # the parent of mnist/
  np.testing.assert_array_equal(load_mnist("test")[1], labels)
  monkeypatch.setenv(ENV_VAR, str(tmp_path / "mnist"))  # the directory itself
  np.testing.assert_array_equal(load_mnist("test")[1], labels)
  # An explicit data_dir wins over the environment variable.
  other_images, other_labels = synthetic(2, 7)
  write_split(tmp_path / "other", "test", other_images, other_labels, gz=False)
  np.testing.assert_array_equal(load_mnist("test", data_dir=tmp_path / "other")[1],
                                other_labels)


def test_load_mnist_missing_data_dir_is_an_error(tmp_path, monkeypatch):
  images, labels = synthetic(2, 8)
  write_split(tmp_path / "good", "train", images, labels, gz=True)
  monkeypatch.setenv(ENV_VAR, str(tmp_path / "good"))
  with pytest.raises(FileNotFoundError, match="data_dir.*t10k-images-idx3-ubyte"):
    load_mnist("test", data_dir=tmp_path / "good")  # only train files there
  with pytest.raises(FileNotFoundError, match=ENV_VAR):
    load_mnist("train", data_dir=tmp_path / "does-not-exist")


def test_load_mnist_nothing_found_names_every_way(tmp_path, monkeypatch, no_tfds):
  monkeypatch.delenv(ENV_VAR, raising=False)
  with pytest.raises(FileNotFoundError) as info:
    load_mnist("train")
  message = str(info.value)
  for needle in ("data_dir", ENV_VAR, "tensorflow_datasets", "train-images-idx3-ubyte"):
    assert needle in message
  monkeypatch.setenv(ENV_VAR, str(tmp_path))  # set, but empty
  with pytest.raises(FileNotFoundError, match="holds no MNIST train files"):
    load_mnist("train")


@pytest.mark.parametrize("problem", ["count", "label", "shape"])
def test_load_mnist_rejects_inconsistent_files(tmp_path, no_env, problem):
  images, labels = synthetic(3, 9)
  if problem == "count":
    labels = labels[:2]
  elif problem == "label":
    labels[1] = 10
  else:
    images = images[:, :27, :]
  write_split(tmp_path, "train", images, labels, gz=False)
  with pytest.raises(ValueError, match={"count": "labels", "label": "0..9",
                                        "shape": "28x28"}[problem]):
    load_mnist("train", data_dir=tmp_path)


def test_load_mnist_rejects_bad_magic_in_place_of_images(tmp_path, no_env):
  images, labels = synthetic(3, 10)
  write_split(tmp_path, "train", images, labels, gz=True)
  (tmp_path / "train-images-idx3-ubyte.gz").write_bytes(gzip.compress(idx_bytes(labels)))
  with pytest.raises(ValueError, match="bad magic number 2049, expected 2051"):
    load_mnist("train", data_dir=tmp_path)


def test_load_mnist_bad_split():
  with pytest.raises(ValueError, match="split"):
    load_mnist("validation", data_dir=".")


# ---------------------------------------------------------------------------------------------
# TFDS fallback


class _FakeTfds(types.ModuleType):
  """Stands in for tensorflow_datasets: ``data_source`` returns records as TFDS does."""

  def __init__(self, records_by_split, fail=False):
    super().__init__("tensorflow_datasets")
    self.records_by_split = records_by_split
    self.fail = fail
    self.calls = []

  def data_source(self, name, *, split, download):
    self.calls.append((name, split, download))
    if self.fail:
      raise AssertionError("Dataset mnist: could not find data in /nowhere.")
    return self.records_by_split[split]


def _records(images, labels):
  return [{"image": im[..., None], "label": np.int64(lb)} for im, lb in zip(images, labels)]


def test_load_mnist_falls_back_to_tfds(tmp_path, monkeypatch):
  tr = synthetic(4, 11)
  te = synthetic(2, 12)
  fake = _FakeTfds({"train": _records(*tr), "test": _records(*te),
                    "train+test": _records(*tr) + _records(*te)})
  monkeypatch.setitem(sys.modules, "tensorflow_datasets", fake)
  monkeypatch.setenv(ENV_VAR, str(tmp_path))  # set but without MNIST -> TFDS
  images, labels = load_mnist("train")
  np.testing.assert_array_equal(images, tr[0])
  assert labels.dtype == np.int32
  np.testing.assert_array_equal(labels, tr[1])
  monkeypatch.delenv(ENV_VAR)
  images, labels = load_mnist("all", download=True)
  np.testing.assert_array_equal(images, np.concatenate([tr[0], te[0]]))
  assert fake.calls == [("mnist", "train", False), ("mnist", "train+test", True)]
  src = MnistSource("test")
  assert len(src) == 2 and src[1]["image"].shape == (28, 28, 1)


def test_load_mnist_tfds_not_prepared(monkeypatch, no_env):
  monkeypatch.setitem(sys.modules, "tensorflow_datasets", _FakeTfds({}, fail=True))
  with pytest.raises(FileNotFoundError, match="TFDS could not open.*data_dir"):
    load_mnist("test")


def test_load_mnist_with_tfds_mock_data(no_env):
  tfds = pytest.importorskip("tensorflow_datasets")  # not installed here: not counted
  with tfds.testing.mock_data(num_examples=5, policy=tfds.testing.MockPolicy.USE_CODE):
    images, labels = load_mnist("train")
  assert images.shape == (5, 28, 28) and images.dtype == np.uint8
  assert labels.shape == (5,) and labels.dtype == np.int32
  assert labels.min() >= 0 and labels.max() <= 9


# ---------------------------------------------------------------------------------------------
# MnistSource


def test_mnist_source_records_and_batches(tmp_path, no_env):
  images, labels = synthetic(6, 13)
  write_split(tmp_path, "train", images, labels, gz=True)
  src = MnistSource("train", data_dir=tmp_path)
  assert len(src) == 6 and src.split == "train"
  for i in (0, 5, -1):
    record = src[i]
    assert set(record) == {"image", "label"}
    assert record["image"].shape == (28, 28, 1) and record["image"].dtype == np.uint8
    assert record["label"].dtype == np.int32 and record["label"].shape == ()
    np.testing.assert_array_equal(record["image"][..., 0], images[i])
    assert record["label"] == labels[i]
  with pytest.raises(IndexError):
    src[6]
  batch = src.get_batch(np.array([4, 1, 4]))
  np.testing.assert_array_equal(batch["image"][..., 0], images[[4, 1, 4]])
  np.testing.assert_array_equal(batch["label"], labels[[4, 1, 4]])
  same = MnistSource.from_arrays(images, labels)
  np.testing.assert_array_equal(same.get_batch(np.arange(6))["image"], src.arrays["image"])
  with pytest.raises(ValueError, match="images"):
    MnistSource.from_arrays(images[:, :20], labels)


# ---------------------------------------------------------------------------------------------
# The real data set (only where /work/shared/data/mnist is present)


@pytest.mark.skipif(not (REAL_DIR / "train-images-idx3-ubyte.gz").is_file(),
                    reason="the real MNIST files are not present")
def test_real_mnist(no_env):
  images, labels = load_mnist("train", data_dir=REAL_DIR)
  assert images.shape == (60000, 28, 28) and images.dtype == np.uint8
  assert np.bincount(labels, minlength=10).tolist() == TRAIN_COUNTS
  assert abs(images.mean() - 33.3184) < 1e-3
  images, labels = load_mnist("test", data_dir=REAL_DIR.parent)  # via the mnist/ subdir
  assert images.shape == (10000, 28, 28)
  assert np.bincount(labels, minlength=10).tolist() == TEST_COUNTS
  assert labels[:5].tolist() == [7, 2, 1, 0, 4]
