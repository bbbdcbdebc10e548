"""MNIST: the IDX files from a directory, or TFDS when no directory is given.

Where the data comes from, in order:

1. ``data_dir`` (an argument): the directory itself or its ``mnist/`` subdirectory must
   hold the IDX files, otherwise ``FileNotFoundError``.
2. the environment variable ``JAXVISION_DATA_DIR``: the directory or its ``mnist/``
   subdirectory, if the files are there.
3. TFDS: ``tfds.data_source("mnist")``, if ``tensorflow_datasets`` is installed and the
   data set is prepared (or ``download=True``). TFDS is imported only here, lazily.

The IDX files are the original ones (LeCun et al.): ``train-images-idx3-ubyte``,
``train-labels-idx1-ubyte``, ``t10k-images-idx3-ubyte``, ``t10k-labels-idx1-ubyte``, each
gzip-compressed (``.gz``) or raw; compression is recognised from the content, not the name.
Malformed files (wrong magic number, truncated data, trailing bytes, corrupt gzip) raise
``ValueError`` naming the file.
"""

from __future__ import annotations

import gzip
import os
import zlib
from pathlib import Path
from typing import Any

import numpy as np

from jaxvision.data.pipeline import ArraySource

__all__ = ["ENV_VAR", "IMAGES_MAGIC", "LABELS_MAGIC", "read_idx", "load_mnist", "MnistSource"]

ENV_VAR = "JAXVISION_DATA_DIR"
IMAGES_MAGIC = 2051  # 0x00000803: unsigned bytes, 3 dimensions
LABELS_MAGIC = 2049  # 0x00000801: unsigned bytes, 1 dimension

# IDX type codes (the third magic byte) and their big-endian NumPy types.
_IDX_TYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
_SPLITS = ("train", "test", "all")
_PREFIX = {"train": "train", "test": "t10k"}
_SIZES = {"train": 60_000, "test": 10_000}


def _decode_idx(data: bytes, name: str, magic: int | None) -> np.ndarray:
  if len(data) < 4:
    raise ValueError(f"{name}: truncated IDX file ({len(data)} bytes, no magic number).")
  found = int.from_bytes(data[:4], "big")
  if magic is not None and found != magic:
    raise ValueError(f"{name}: bad magic number {found}, expected {magic}.")
  if data[0] != 0 or data[1] != 0 or data[2] not in _IDX_TYPES:
    raise ValueError(f"{name}: bad magic number {found}: not an IDX file.")
  ndim = data[3]
  header = 4 + 4 * ndim
  if len(data) < header:
    raise ValueError(f"{name}: truncated IDX header ({len(data)} bytes for {ndim} "
                     f"dimensions).")
  shape = tuple(int.from_bytes(data[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim))
  dtype = np.dtype(_IDX_TYPES[data[2]])
  expected = header + int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
  if len(data) < expected:
    raise ValueError(f"{name}: truncated IDX data: shape {shape} needs {expected} bytes, "
                     f"the file has {len(data)}.")
  if len(data) > expected:
    raise ValueError(f"{name}: {len(data) - expected} unexpected trailing bytes after the "
                     f"IDX data of shape {shape}.")
  arr = np.frombuffer(data, dtype=dtype, count=(expected - header) // dtype.itemsize,
                      offset=header)
  return arr.reshape(shape).astype(dtype.newbyteorder("="))


def read_idx(path: str | os.PathLike, *, magic: int | None = None) -> np.ndarray:
  """Reads one IDX file (gzip-compressed or raw) into a NumPy array.

  Args:
    path: the file. Gzip compression is detected from its first bytes.
    magic: the expected magic number (e.g. ``IMAGES_MAGIC`` = 2051), or ``None`` to accept
      any valid IDX type.

  Returns:
    The array, in native byte order, with the shape from the header (e.g. uint8
    ``[N, 28, 28]`` for MNIST images).

  Raises:
    ValueError: bad magic number, truncated data, trailing bytes or corrupt gzip.

  >>> import tempfile
  >>> p = Path(tempfile.mkdtemp()) / "x-idx1-ubyte"
  >>> _ = p.write_bytes(bytes([0, 0, 8, 1, 0, 0, 0, 3, 7, 8, 9]))
  >>> read_idx(p, magic=LABELS_MAGIC).tolist()
  [7, 8, 9]
  """
  path = Path(path)
  data = path.read_bytes()
  if data[:2] == b"\x1f\x8b":
    try:
      data = gzip.decompress(data)
    except (OSError, EOFError, zlib.error) as e:
      raise ValueError(f"{path}: corrupt or truncated gzip data ({e}).") from e
  return _decode_idx(data, str(path), magic)


def _file(directory: Path, stem: str) -> Path | None:
  """``stem`` (e.g. ``train-images-idx3-ubyte``) in ``directory``, gzipped or raw."""
  dotted = stem.replace("-idx", ".idx")  # a common variant: train-images.idx3-ubyte
  for name in (stem + ".gz", stem, dotted + ".gz", dotted):
    candidate = directory / name
    if candidate.is_file():
      return candidate
  return None


def _find_files(directory: str | os.PathLike, split: str) -> tuple[Path, Path] | None:
  """(images, labels) of ``split`` in ``directory`` or ``directory/mnist``, or None."""
  root = Path(directory).expanduser()
  for d in (root, root / "mnist"):
    images = _file(d, f"{_PREFIX[split]}-images-idx3-ubyte")
    labels = _file(d, f"{_PREFIX[split]}-labels-idx1-ubyte")
    if images is not None and labels is not None:
      return images, labels
  return None


def _load_files(images_path: Path, labels_path: Path) -> tuple[np.ndarray, np.ndarray]:
  images = read_idx(images_path, magic=IMAGES_MAGIC)
  labels = read_idx(labels_path, magic=LABELS_MAGIC)
  if images.shape[1:] != (28, 28):
    raise ValueError(f"{images_path}: MNIST images must be 28x28, got shape {images.shape}.")
  if images.shape[0] != labels.shape[0]:
    raise ValueError(f"{images_path} holds {images.shape[0]} images but {labels_path} holds "
                     f"{labels.shape[0]} labels.")
  if labels.size and labels.max() > 9:
    raise ValueError(f"{labels_path}: MNIST labels must be in 0..9, found {labels.max()}.")
  return images, labels.astype(np.int32)


def _load_tfds(split: str, download: bool) -> tuple[np.ndarray, np.ndarray] | None:
  """MNIST from ``tfds.data_source``, or None when TFDS is not installed."""
  try:
    import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
  except ImportError:
    return None
  tfds_split = {"train": "train", "test": "test", "all": "train+test"}[split]
  try:
    source = tfds.data_source("mnist", split=tfds_split, download=download)
  except Exception as e:  # TFDS raises several types for "not prepared".  # noqa: BLE001
    raise FileNotFoundError(
        f"TFDS could not open the prepared 'mnist' data set ({type(e).__name__}: {e}). "
        f"{_HOW_TO}") from e
  n = len(source)
  records = None
  getitems = getattr(source, "__getitems__", None)
  if getitems is not None:
    try:  # one batched read; TFDS' mock_data patches sources with another signature
      records = getitems(list(range(n)))
    except TypeError:
      records = None
  if records is None:
    records = [source[i] for i in range(n)]
  images = np.stack([np.asarray(r["image"], dtype=np.uint8).reshape(28, 28) for r in records])
  labels = np.asarray([int(r["label"]) for r in records], dtype=np.int32)
  return images, labels


_HOW_TO = (f"Provide MNIST in one of these ways: pass `data_dir=` a directory holding "
           f"train-images-idx3-ubyte[.gz], train-labels-idx1-ubyte[.gz], "
           f"t10k-images-idx3-ubyte[.gz], t10k-labels-idx1-ubyte[.gz] (directly or in a "
           f"mnist/ subdirectory); or set the environment variable {ENV_VAR} to such a "
           f"directory; or install tensorflow_datasets (`pip install jaxvision[tfds]`) and "
           f"prepare 'mnist' (or pass `download=True`).")


def load_mnist(split: str = "train", *, data_dir: str | os.PathLike | None = None,
               download: bool = False) -> tuple[np.ndarray, np.ndarray]:
  """Loads MNIST images and labels as NumPy arrays.

  Args:
    split: ``"train"`` (60,000), ``"test"`` (10,000) or ``"all"`` (train then test).
    data_dir: a directory with the IDX files (or a ``mnist/`` subdirectory with them).
      ``None`` tries ``$JAXVISION_DATA_DIR`` and then TFDS.
    download: let TFDS download and prepare the data set if it has to be used.

  Returns:
    ``(images, labels)``: uint8 ``[N, 28, 28]`` and int32 ``[N]`` in ``0..9``.

  Raises:
    FileNotFoundError: no data found anywhere (the message lists the ways to provide it).
    ValueError: a bad ``split`` or malformed files.

  >>> import tempfile
  >>> d = Path(tempfile.mkdtemp())
  >>> _ = (d / "t10k-images-idx3-ubyte").write_bytes(
  ...     bytes([0, 0, 8, 3, 0, 0, 0, 1, 0, 0, 0, 28, 0, 0, 0, 28]) + bytes(784))
  >>> _ = (d / "t10k-labels-idx1-ubyte").write_bytes(bytes([0, 0, 8, 1, 0, 0, 0, 1, 4]))
  >>> images, labels = load_mnist("test", data_dir=d)
  >>> images.shape, images.dtype, labels.tolist()
  ((1, 28, 28), dtype('uint8'), [4])
  """
  if split not in _SPLITS:
    raise ValueError(f"`split` must be one of {_SPLITS}, got {split!r}.")
  if split == "all":
    if data_dir is None and not os.environ.get(ENV_VAR):
      tfds_data = _load_tfds("all", download)
      if tfds_data is not None:
        return tfds_data
    train = load_mnist("train", data_dir=data_dir, download=download)
    test = load_mnist("test", data_dir=data_dir, download=download)
    return np.concatenate([train[0], test[0]]), np.concatenate([train[1], test[1]])

  if data_dir is not None:
    found = _find_files(data_dir, split)
    if found is None:
      raise FileNotFoundError(
          f"`data_dir` {str(data_dir)!r} holds no MNIST {split} files "
          f"({_PREFIX[split]}-images-idx3-ubyte[.gz] and {_PREFIX[split]}-labels-idx1-ubyte"
          f"[.gz], directly or in mnist/). {_HOW_TO}")
    return _load_files(*found)
  env_dir = os.environ.get(ENV_VAR)
  if env_dir:
    found = _find_files(env_dir, split)
    if found is not None:
      return _load_files(*found)
  data = _load_tfds(split, download)
  if data is None:
    where = f" (${ENV_VAR}={env_dir!r} holds no MNIST {split} files)" if env_dir else (
        f" (${ENV_VAR} is not set)")
    raise FileNotFoundError(f"MNIST not found: no `data_dir` given{where} and "
                            f"tensorflow_datasets is not installed. {_HOW_TO}")
  return data


class MnistSource(ArraySource):
  """MNIST as a grain random-access data source of ``{"image", "label"}`` records.

  ``source[i]`` is ``{"image": uint8 [28, 28, 1], "label": int32 scalar}``; the whole split
  lives in memory (47 MB for train), so ``get_batch`` gives :func:`make_pipeline` its fast
  batch path.

  Args:
    split: ``"train"``, ``"test"`` or ``"all"``.
    data_dir: as in :func:`load_mnist`.
    download: as in :func:`load_mnist`.

  >>> import tempfile
  >>> d = Path(tempfile.mkdtemp())
  >>> _ = (d / "train-images-idx3-ubyte").write_bytes(
  ...     bytes([0, 0, 8, 3, 0, 0, 0, 2, 0, 0, 0, 28, 0, 0, 0, 28]) + bytes(2 * 784))
  >>> _ = (d / "train-labels-idx1-ubyte").write_bytes(bytes([0, 0, 8, 1, 0, 0, 0, 2, 3, 1]))
  >>> src = MnistSource("train", data_dir=d)
  >>> len(src), src[0]["image"].shape, src[0]["image"].dtype, int(src[1]["label"])
  (2, (28, 28, 1), dtype('uint8'), 1)
  """

  def __init__(self, split: str = "train", *, data_dir: str | os.PathLike | None = None,
               download: bool = False):
    images, labels = load_mnist(split, data_dir=data_dir, download=download)
    self.split = split
    super().__init__({"image": images[..., None], "label": labels})

  @classmethod
  def from_arrays(cls, images: Any, labels: Any) -> "MnistSource":
    """A source over given ``images`` (uint8 ``[N, 28, 28]`` or ``[N, 28, 28, 1]``) and
    ``labels`` (``[N]``), e.g. a subset for tests."""
    images = np.asarray(images, dtype=np.uint8)
    if images.ndim == 3:
      images = images[..., None]
    if images.ndim != 4 or images.shape[1:] != (28, 28, 1):
      raise ValueError(f"`images` must have shape [N, 28, 28] or [N, 28, 28, 1], got "
                       f"{images.shape}.")
    self = cls.__new__(cls)
    self.split = "arrays"
    ArraySource.__init__(self, {"image": images, "label": np.asarray(labels, np.int32)})
    return self
