"""Detection and segmentation data sets by name, for the experiments' ``--dataset`` flag.

:func:`load_dataset` turns a spec string into a :class:`Dataset`: train and test
random-access sources, the class names and the image size. The specs (:data:`DATASETS`):

* ``"scenes"`` — MNIST-digit scenes (:mod:`jaxvision.data.scenes`), offline; ``data_dir``
  is the MNIST directory. Detection and segmentation.
* ``"book:DIR"`` — the book's drinks layout (:mod:`jaxvision.data.book`): ``DIR`` holds the
  images and ``labels_train.csv`` / ``labels_test.csv`` (detection) or
  ``segmentation_train.npy`` / ``segmentation_test.npy`` (segmentation); optional
  ``classes.txt`` (one name a line, line 1 the background) or ``classes.json`` (a list).
  Detection and segmentation.
* ``"voc"`` (= ``"voc2007"``), ``"voc2012"`` — PASCAL VOC from TFDS (:func:`voc_source`);
  ``data_dir`` is the TFDS data directory. Detection only.
* ``"pets"`` — Oxford-IIIT Pet trimaps from TFDS (:func:`oxford_pets_source`). Segmentation
  only.

Every record has the same image size, so records batch (boxes are scaled with the image):

  detection:    {"image": uint8 [H, W, 3], "boxes": float32 [G, 4] xyxy pixels,
                 "classes": int32 [G] (0 = padding), "num_boxes": int32 []}
  segmentation: {"image": uint8 [H, W, 3], "mask": uint8 [H, W] class ids (0 background)}

:func:`iterate_batches` reads a source in order in fixed-size batches, the last one padded
with zeros, for jitted evaluation with static shapes.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from jaxvision import _checks
from jaxvision.data import scenes
from jaxvision.data.book import (BookDetectionSource, BookSegmentationSource,
                                 read_book_labels)
from jaxvision.data.pipeline import ArraySource
from jaxvision.data.tfds import (PETS_MASK_CLASSES, VOC_CLASSES, oxford_pets_source,
                                 voc_source)

__all__ = ["DATASETS", "TASKS", "Dataset", "load_dataset", "iterate_batches"]

TASKS = ("detection", "segmentation", "instances")

# Spec -> what it is and which tasks it serves; the keys are what `load_dataset` accepts
# ("book:DIR" with a directory in place of DIR).
DATASETS = {
    "scenes": "MNIST-digit scenes, generated offline (detection, segmentation, instances)",
    "book:DIR": "the book's drinks layout in directory DIR (detection, segmentation)",
    "voc": "PASCAL VOC 2007 from TFDS, train / test (detection)",
    "voc2007": "PASCAL VOC 2007 from TFDS, train / test (detection)",
    "voc2012": "PASCAL VOC 2012 from TFDS, train / validation (detection)",
    "pets": "Oxford-IIIT Pet trimaps from TFDS, train / test (segmentation)",
}

# "instances": detection records plus the semantic "mask" (instance masks are the mask's
# pixels of the box's class inside the box): Mask R-CNN's data, scenes only.
_SPEC_TASKS = {"scenes": TASKS, "book": ("detection", "segmentation"),
               "voc": ("detection",), "voc2007": ("detection",), "voc2012": ("detection",),
               "pets": ("segmentation",)}
_VOC_SPLITS = {"voc": (2007, "train", "test"), "voc2007": (2007, "train", "test"),
               "voc2012": (2012, "train", "validation")}
_BOOK_FILES = {"detection": ("labels_train.csv", "labels_test.csv"),
               "segmentation": ("segmentation_train.npy", "segmentation_test.npy")}
_IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp")
_VOC_MAX_BOXES = 50  # voc_source's default: VOC images hold at most 42 objects


@dataclasses.dataclass(frozen=True)
class Dataset:
  """A detection or segmentation data set: train/test sources and what describes them.

  Attributes:
    name: the spec it was loaded from (``"book:DIR"`` with ``DIR`` absolute).
    task: ``"detection"`` or ``"segmentation"``.
    train: the training records, a random-access source (``len``, ``[i]``,
      ``get_batch(indices)``; an :class:`~jaxvision.data.ArraySource` with ``.arrays`` for
      the in-memory data sets ``scenes`` and ``book:DIR``); None for a ``book:DIR`` test set
      without a training CSV loaded with ``require_train=False``.
    test: the test records, the same kind of source.
    class_names: name of every class id; index 0 is the background.
    image_size: ``(H, W)`` of every record's image (and mask).
  """

  name: str
  task: str
  train: Any
  test: Any
  class_names: tuple[str, ...]
  image_size: tuple[int, int]

  def __post_init__(self):
    if self.task not in TASKS:
      raise ValueError(f"`task` must be one of {TASKS}, got {self.task!r}.")
    names = tuple(self.class_names)
    if not names or not all(isinstance(n, str) for n in names):
      raise ValueError(f"`class_names` must be a non-empty sequence of str, got "
                       f"{self.class_names!r}.")
    object.__setattr__(self, "class_names", names)
    object.__setattr__(self, "image_size", tuple(int(s) for s in self.image_size))

  @property
  def num_classes(self) -> int:
    """Number of classes, background included (``len(class_names)``)."""
    return len(self.class_names)


def load_dataset(spec: str, *, task: str, image_size: tuple[int, int],
                 data_dir: str | os.PathLike | None = None,
                 scene_config: scenes.SceneConfig | None = None, train_scenes: int = 1000,
                 test_scenes: int = 200, max_boxes: int | None = None,
                 digits: Mapping[str, tuple[np.ndarray, np.ndarray]] | None = None,
                 seed: int = 0, download: bool = False, require_train: bool = True
                 ) -> Dataset:
  """The data set named by ``spec`` (see :data:`DATASETS`) for ``task``, resized.

  Args:
    spec: ``"scenes"``, ``"book:DIR"``, ``"voc"``, ``"voc2007"``, ``"voc2012"`` or
      ``"pets"`` (see the module docstring).
    task: ``"detection"`` or ``"segmentation"``.
    image_size: ``(H, W)`` of every record; images are resized to it (bilinear, masks
      nearest-neighbour) and boxes scaled with them.
    data_dir: ``scenes``: the MNIST directory (``None``: ``$JAXVISION_DATA_DIR`` or TFDS);
      ``voc*`` / ``pets``: the TFDS data directory (``None``: TFDS' default); ignored by
      ``book:DIR``.
    scene_config: ``scenes`` only: the generator's options; its ``image_size`` must equal
      ``image_size``. ``None``: ``SceneConfig(image_size=image_size, max_boxes=max_boxes)``.
    train_scenes: ``scenes`` only: number of training scenes.
    test_scenes: ``scenes`` only: number of test scenes.
    max_boxes: detection: ``G``, the padded box rows. ``None``: the scene config's,
      the most boxes of any image in ``book:DIR``'s train and test CSVs, 50 for VOC (an
      image with more objects keeps its first ``G``).
    digits: ``scenes`` only: ``{"train": (images, labels), "test": (images, labels)}`` digit
      pools (``uint8 [N, 28, 28]``, ``[N]``) used instead of MNIST (tests).
    seed: ``scenes`` only: the scene stream's seed.
    download: ``voc*`` / ``pets``: let TFDS download and prepare the data set.
    require_train: ``book:DIR``: False accepts a folder with only the test labels (an
      evaluation set); ``Dataset.train`` is then None.

  The ``scenes`` options are ignored by the other specs, so a CLI may pass them always.

  Returns:
    A :class:`Dataset` (records: see the module docstring).

  Raises:
    ValueError: an unknown spec (the message lists the choices), a spec that does not serve
      ``task``, or a bad argument.
    FileNotFoundError: ``book:DIR``: the directory or a file of its layout is missing.
    ImportError: ``voc*`` / ``pets`` without ``tensorflow_datasets``.

  >>> rng = np.random.default_rng(0)
  >>> pool = ((rng.random((5, 28, 28)) > 0.7).astype(np.uint8) * 255, np.arange(5))
  >>> ds = load_dataset("scenes", task="segmentation", image_size=(32, 48), train_scenes=4,
  ...                   test_scenes=2, digits={"train": pool, "test": pool})
  >>> len(ds.train), len(ds.test), sorted(ds.test[0]), ds.test[0]["mask"].shape
  (4, 2, ['image', 'mask'], (32, 48))
  >>> ds.num_classes, ds.class_names[:3]
  (11, ('background', '0', '1'))
  """
  if not isinstance(spec, str) or not spec.strip():
    raise ValueError(f"`spec` must be a data set name, one of {_choices()}; got {spec!r}.")
  if task not in TASKS:
    raise ValueError(f"`task` must be one of {TASKS}, got {task!r}.")
  if image_size is None:
    raise ValueError("`image_size` must be (height, width), got None.")
  size = _checks.check_size_pair(image_size, "image_size")
  if max_boxes is not None and (isinstance(max_boxes, bool) or
                                not isinstance(max_boxes, (int, np.integer)) or max_boxes < 1):
    raise ValueError(f"`max_boxes` must be a positive int or None, got {max_boxes!r}.")
  spec = spec.strip()
  key = "book" if spec.lower().startswith("book:") or spec.lower() == "book" else spec.lower()
  if key not in _SPEC_TASKS:
    raise ValueError(f"Unknown data set {spec!r} (`spec`); the choices are {_choices()}.")
  if task not in _SPEC_TASKS[key]:
    raise ValueError(f"Data set {spec!r} has no {task} data (`task`={task!r}); it serves "
                     f"{' and '.join(_SPEC_TASKS[key])}.")
  if key == "scenes":
    return _load_scenes(task, size, data_dir=data_dir, scene_config=scene_config,
                        train_scenes=train_scenes, test_scenes=test_scenes,
                        max_boxes=max_boxes, digits=digits, seed=seed)
  if key == "book":
    directory = spec[len("book:"):].strip() if ":" in spec else ""
    if not directory:
      raise ValueError(f"`spec` {spec!r}: the book's layout needs a directory, 'book:DIR'.")
    return _load_book(directory, task, size, max_boxes=max_boxes,
                      require_train=require_train)
  if key in _VOC_SPLITS:
    year, train_split, test_split = _VOC_SPLITS[key]
    options = dict(data_dir=data_dir, image_size=size, year=year, download=download,
                   max_boxes=_VOC_MAX_BOXES if max_boxes is None else int(max_boxes))
    return Dataset(name=key, task=task, train=voc_source(train_split, **options),
                   test=voc_source(test_split, **options),
                   class_names=("background",) + VOC_CLASSES, image_size=size)
  options = dict(data_dir=data_dir, image_size=size, download=download)  # pets
  return Dataset(name=key, task=task, train=oxford_pets_source("train", **options),
                 test=oxford_pets_source("test", **options), class_names=PETS_MASK_CLASSES,
                 image_size=size)


def _choices() -> str:
  return ", ".join(repr(k) for k in DATASETS)


def _check_count(value: Any, name: str) -> int:
  if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
    raise ValueError(f"`{name}` must be a positive int, got {value!r}.")
  return int(value)


def _task_fields(task: str) -> tuple[str, ...]:
  detection = ("image", "boxes", "classes", "num_boxes")
  return {"detection": detection, "instances": detection + ("mask",)}.get(
      task, ("image", "mask"))


def _load_scenes(task, size, *, data_dir, scene_config, train_scenes, test_scenes, max_boxes,
                 digits, seed) -> Dataset:
  counts = {"train": _check_count(train_scenes, "train_scenes"),
            "test": _check_count(test_scenes, "test_scenes")}
  if scene_config is None:
    scene_config = scenes.SceneConfig(image_size=size, max_boxes=max_boxes)
  else:
    if tuple(scene_config.image_size) != size:
      raise ValueError(f"`scene_config.image_size` {tuple(scene_config.image_size)} differs "
                       f"from `image_size` {size}.")
    if max_boxes is not None and int(max_boxes) != scene_config.max_boxes:
      raise ValueError(f"`max_boxes` {max_boxes} differs from `scene_config.max_boxes` "
                       f"{scene_config.max_boxes}; set one of them.")
  if digits is not None and (not isinstance(digits, Mapping) or
                             not {"train", "test"} <= set(digits)):
    raise ValueError(f"`digits` must be a mapping with 'train' and 'test' (images, labels) "
                     f"pools, got {digits!r:.200}.")
  fields = _task_fields(task)
  splits = {}
  for split, n in counts.items():
    source = scenes.SceneSource(split, n, data_dir=data_dir, config=scene_config, seed=seed,
                                digits=None if digits is None else digits[split])
    arrays = source.arrays
    splits[split] = ArraySource({k: arrays[k] for k in fields})
  return Dataset(name="scenes", task=task, train=splits["train"], test=splits["test"],
                 class_names=scenes.CLASS_NAMES, image_size=tuple(scene_config.image_size))


def _book_layout(task: str) -> str:
  train, test = _BOOK_FILES[task]
  if task == "detection":
    what = "rows frame,xmin,xmax,ymin,ymax,class_id"
  else:
    what = "a pickled dict of image file name -> mask"
  return (f"a book-format {task} data set is a directory DIR holding the images, {train} "
          f"and {test} ({what}; image names relative to DIR, or to DIR/images when DIR "
          f"itself holds no image files) and optionally classes.txt (one class name a line, "
          f"the first the background) or classes.json (a list of names)")


def _book_image_dir(directory: Path) -> Path:
  """``directory``, or ``directory/images`` when only that one holds image files."""
  sub = directory / "images"
  if not sub.is_dir():
    return directory
  with os.scandir(directory) as entries:
    if any(e.name.lower().endswith(_IMAGE_SUFFIXES) and e.is_file() for e in entries):
      return directory
  return sub


def _read_class_names(directory: Path) -> tuple[tuple[str, ...], Path] | None:
  """``(class names, file)`` from ``classes.txt`` or ``classes.json`` in ``directory``."""
  txt, js = directory / "classes.txt", directory / "classes.json"
  if txt.is_file() and js.is_file():
    raise ValueError(f"{directory} holds both classes.txt and classes.json; keep one.")
  if txt.is_file():
    path = txt
    names = [line.strip() for line in txt.read_text(encoding="utf-8-sig").splitlines()]
    while names and not names[-1]:
      names.pop()
    if any(not n for n in names):
      raise ValueError(f"{path}: blank line {names.index('') + 1}; expected one class name "
                       f"a line, the first the background.")
  elif js.is_file():
    path = js
    try:
      names = json.loads(js.read_text(encoding="utf-8-sig"))
    except json.JSONDecodeError as e:
      raise ValueError(f"{path}: not valid JSON ({e}).") from None
    if not isinstance(names, list) or not all(isinstance(n, str) and n.strip()
                                              for n in names):
      raise ValueError(f"{path}: expected a JSON list of non-empty class names (the first "
                       f"the background), got {names!r}.")
    names = [n.strip() for n in names]
  else:
    return None
  if len(names) < 2:
    raise ValueError(f"{path}: expected the background and at least one class, got "
                     f"{names!r}.")
  if len(set(names)) != len(names):
    duplicate = next(n for n in names if names.count(n) > 1)
    raise ValueError(f"{path}: class name {duplicate!r} appears more than once.")
  return tuple(names), path


def _load_book(directory: str, task: str, size: tuple[int, int], *,
               max_boxes: int | None, require_train: bool = True) -> Dataset:
  root = Path(directory).expanduser().absolute()
  if not root.is_dir():
    raise FileNotFoundError(f"Book data directory {str(root)!r} does not exist; "
                            f"{_book_layout(task)}.")
  train_file, test_file = (root / name for name in _BOOK_FILES[task])
  with_train = require_train or train_file.is_file()
  for path in (train_file, test_file) if with_train else (test_file,):
    if not path.is_file():
      raise FileNotFoundError(f"{str(path)!r} does not exist; {_book_layout(task)}.")
  files = (train_file, test_file) if with_train else (test_file,)
  image_dir = _book_image_dir(root)
  if task == "detection":
    labels = [read_book_labels(f) for f in files]
    counts = [len(c) for split in labels for _, c in split.values()]
    if max_boxes is None:
      max_boxes = max(counts + [1])
    sources = [BookDetectionSource(image_dir, f, max_boxes=max_boxes, image_size=size)
               for f in files]
    top = max(int(s.arrays["classes"].max()) for s in sources)
  else:
    sources = [BookSegmentationSource(image_dir, f, image_size=size) for f in files]
    top = max(int(s.arrays["mask"].max()) for s in sources)
  train, test = sources if with_train else (None, sources[0])
  found = _read_class_names(root)
  if found is None:
    class_names = ("background",) + tuple(str(k) for k in range(1, max(top, 1) + 1))
  else:
    class_names, path = found
    if top >= len(class_names):
      raise ValueError(f"{path} names {len(class_names)} classes (ids 0..{len(class_names) - 1})"
                       f" but the data has class id {top}.")
  return Dataset(name=f"book:{root}", task=task, train=train, test=test,
                 class_names=class_names, image_size=size)


def iterate_batches(source: Any, batch_size: int, *,
                    drop_remainder: bool = False) -> Iterator[tuple[dict[str, np.ndarray], int]]:
  """The records of ``source`` in order, stacked in batches of exactly ``batch_size``.

  For evaluation with static shapes: every batch has ``batch_size`` rows; the last one, when
  ``len(source)`` is not a multiple, is padded with all-zero records (zero boxes, classes 0
  and ``num_boxes`` 0 for detection) and ``n_valid`` says how many rows are real. Batches
  are gathered with ``source.get_batch(indices)`` where the source has it.

  Args:
    source: a random-access source (``len``, ``[i]`` giving a dict of arrays, optionally
      ``get_batch``).
    batch_size: rows per batch, ``>= 1``.
    drop_remainder: skip the last, incomplete batch instead of padding it.

  Returns:
    An iterator of ``(batch, n_valid)``: ``batch`` a dict of arrays ``[batch_size, ...]``,
    rows ``>= n_valid`` zeros. Arguments are checked when it is called, not when iterated.

  >>> src = ArraySource({"x": np.arange(1, 6), "y": np.ones((5, 2))})
  >>> [(b["x"].tolist(), n) for b, n in iterate_batches(src, 2)]
  [([1, 2], 2), ([3, 4], 2), ([5, 0], 1)]
  >>> [n for _, n in iterate_batches(src, 2, drop_remainder=True)]
  [2, 2]
  """
  if not hasattr(source, "__len__") or not hasattr(source, "__getitem__"):
    raise TypeError(f"`source` must support len() and indexing, got {type(source).__name__}.")
  if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or (
      batch_size < 1):
    raise ValueError(f"`batch_size` must be a positive int, got {batch_size!r}.")
  return _batches(source, int(batch_size), bool(drop_remainder))


def _batches(source: Any, batch_size: int,
             drop_remainder: bool) -> Iterator[tuple[dict[str, np.ndarray], int]]:
  n = len(source)
  get_batch = getattr(source, "get_batch", None)
  stop = n - n % batch_size if drop_remainder else n
  for start in range(0, stop, batch_size):
    indices = np.arange(start, min(start + batch_size, n))
    if callable(get_batch):
      batch = get_batch(indices)
    else:
      batch = _stack([source[int(i)] for i in indices])
    n_valid = len(indices)
    if n_valid < batch_size:
      batch = _pad(batch, batch_size - n_valid)
    yield batch, n_valid


def _stack(records: list[Any]) -> Any:
  first = records[0]
  if isinstance(first, Mapping):
    return {k: _stack([r[k] for r in records]) for k in first}
  return np.stack([np.asarray(r) for r in records])


def _pad(batch: Any, extra: int) -> Any:
  if isinstance(batch, Mapping):
    return {k: _pad(v, extra) for k, v in batch.items()}
  batch = np.asarray(batch)
  return np.concatenate([batch, np.zeros((extra,) + batch.shape[1:], batch.dtype)])
