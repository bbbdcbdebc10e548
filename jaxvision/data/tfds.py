"""TFDS data sets as random-access sources in the project's detection/segmentation convention.

* :func:`voc_source` — PASCAL VOC 2007/2012 detection (``tfds.data_source("voc/2007")``):
  ``{"image": uint8 [H, W, 3], "boxes": float32 [G, 4] xyxy pixels, "classes": int32 [G],
  "num_boxes": int32 []}`` with classes 1..20 (:data:`VOC_CLASSES`; 0 is padding).
* :func:`oxford_pets_source` — Oxford-IIIT Pet trimaps (``tfds.data_source(
  "oxford_iiit_pet")``): ``{"image": uint8 [H, W, 3], "mask": uint8 [H, W]}`` with classes
  :data:`PETS_MASK_CLASSES` (0 background, 1 pet, 2 border).

Both read records lazily from TFDS' ArrayRecord files (nothing is held in memory), resize
each image to a fixed ``image_size`` so records batch, and give ``get_batch`` (a batched
ArrayRecord read) for :func:`~jaxvision.data.make_pipeline`'s batch path. The sources pickle,
so grain worker processes can use them.

``tensorflow_datasets`` is an optional dependency (``pip install jaxvision[tfds]``), imported
only when one of these functions is called. ``tfds.data_source`` needs the data set prepared
in ``data_dir`` (``tfds build voc/2007``, or ``download=True`` here), and a TFDS version that
writes ArrayRecord files (4.9+).
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from jaxvision import _checks
from jaxvision.data.book import _resize_image, _resize_mask

__all__ = ["VOC_CLASSES", "PETS_MASK_CLASSES", "voc_source", "oxford_pets_source"]

# Class id k (1..20) is VOC_CLASSES[k - 1]: TFDS' label order (alphabetical), shifted by one.
VOC_CLASSES = ("aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair",
               "cow", "diningtable", "dog", "horse", "motorbike", "person", "pottedplant",
               "sheep", "sofa", "train", "tvmonitor")
PETS_MASK_CLASSES = ("background", "pet", "border")

# Oxford-IIIT Pet trimap value -> mask class: 1 (pet) -> 1, 2 (background) -> 0,
# 3 (border / not classified) -> 2. Index 0 is not a trimap value.
_TRIMAP_TO_CLASS = np.array([0, 1, 0, 2], np.uint8)

_INSTALL_HINT = ("tensorflow_datasets is not installed; install the optional dependency with "
                 "`pip install jaxvision[tfds]` (or `pip install tensorflow-datasets`).")


def _import_tfds():
  try:
    import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
  except ImportError as e:
    raise ImportError(_INSTALL_HINT) from e
  return tfds


class _MappedSource:
  """A random-access source whose records are ``fn(source[i])``.

  ``get_batch(indices)`` reads all records with one ``source.__getitems__`` call where the
  source has it (TFDS' ArrayRecord sources read a batch in parallel) and stacks the converted
  records field by field.
  """

  def __init__(self, source: Sequence[Any], fn: Callable[[Any], dict[str, np.ndarray]],
               name: str):
    self._source = source
    self._fn = fn
    self._name = name
    self._length = len(source)

  def __len__(self) -> int:
    return self._length

  def __getitem__(self, index: int) -> dict[str, np.ndarray]:
    return self._fn(self._source[_checks.check_index(index, self._length)])

  def _read(self, indices: list[int]) -> list[Any]:
    getitems = getattr(self._source, "__getitems__", None)
    if getitems is not None:
      try:  # one batched read; TFDS' mock_data patches sources with another signature
        return list(getitems(indices))
      except TypeError:
        pass
    return [self._source[i] for i in indices]

  def get_batch(self, indices: Any) -> dict[str, np.ndarray]:
    """The records at ``indices`` (``[B]`` ints), converted and stacked field by field."""
    indices = [int(i) % self._length for i in np.asarray(indices).reshape(-1)]
    records = [self._fn(r) for r in self._read(indices)]
    return {k: np.stack([r[k] for r in records]) for k in records[0]}

  def __repr__(self) -> str:
    return f"{self._name}(len={self._length})"


def _voc_record(record: Any, *, image_size: tuple[int, int] | None,
                max_boxes: int) -> dict[str, np.ndarray]:
  """A TFDS VOC record -> the detection convention (see :func:`voc_source`)."""
  image = np.asarray(record["image"], dtype=np.uint8)
  if image.ndim != 3 or image.shape[-1] != 3:
    raise ValueError(f"VOC image must be [H, W, 3], got shape {image.shape}.")
  if image_size is not None:
    image = _resize_image(image, image_size)
  height, width = image.shape[:2]
  objects = record["objects"]
  bbox = np.asarray(objects["bbox"], dtype=np.float32).reshape(-1, 4)
  labels = np.asarray(objects["label"]).reshape(-1)
  if bbox.shape[0] != labels.shape[0]:
    raise ValueError(f"VOC record has {bbox.shape[0]} boxes but {labels.shape[0]} labels.")
  ymin, xmin, ymax, xmax = np.clip(bbox, 0.0, 1.0).T
  # A box empty after clipping (outside the image, or degenerate) is dropped with its label:
  # it could only be matched at IoU 0 with an infinite log-size target.
  keep = (xmax > xmin) & (ymax > ymin)
  xyxy = np.stack([xmin * width, ymin * height, xmax * width, ymax * height], axis=-1)[keep]
  labels = labels[keep]
  n = min(xyxy.shape[0], max_boxes)
  boxes = np.zeros((max_boxes, 4), np.float32)
  boxes[:n] = xyxy[:n]
  classes = np.zeros((max_boxes,), np.int32)
  classes[:n] = labels[:n].astype(np.int32) + 1
  return {"image": image, "boxes": boxes, "classes": classes, "num_boxes": np.int32(n)}


def _pets_record(record: Any, *, image_size: tuple[int, int] | None) -> dict[str, np.ndarray]:
  """A TFDS Oxford-IIIT Pet record -> ``{"image", "mask"}`` (see :func:`oxford_pets_source`)."""
  image = np.asarray(record["image"], dtype=np.uint8)
  trimap = np.asarray(record["segmentation_mask"])
  if trimap.ndim == 3 and trimap.shape[-1] == 1:
    trimap = trimap[..., 0]
  if image.ndim != 3 or image.shape[-1] != 3 or trimap.shape != image.shape[:2]:
    raise ValueError(f"Oxford-IIIT Pet record: expected an image [H, W, 3] and a trimap "
                     f"[H, W, 1] of the same size, got {image.shape} and "
                     f"{np.shape(record['segmentation_mask'])}.")
  if trimap.size and (trimap.min() < 1 or trimap.max() > 3):
    raise ValueError(f"Oxford-IIIT Pet trimap values must be 1 (pet), 2 (background) or 3 "
                     f"(border), found values in [{trimap.min()}, {trimap.max()}].")
  mask = _TRIMAP_TO_CLASS[trimap]
  if image_size is not None:
    image = _resize_image(image, image_size)
    mask = _resize_mask(mask, image_size)
  return {"image": image, "mask": mask}


def voc_source(split: str, *, data_dir: str | os.PathLike | None = None,
               image_size: tuple[int, int] | None = (240, 320), max_boxes: int = 50,
               year: int = 2007, download: bool = False) -> _MappedSource:
  """PASCAL VOC detection from TFDS as a random-access source of padded box records.

  ``source[i]`` is ``{"image": uint8 [H, W, 3], "boxes": float32 [G, 4], "classes": int32
  [G], "num_boxes": int32 []}`` with ``(H, W) = image_size`` and ``G = max_boxes``:

  * the image resized bilinearly to ``image_size`` (not keeping the aspect ratio);
  * boxes in xyxy pixels of the *resized* image, ``x2``/``y2`` the exclusive right/bottom
    edges, converted from TFDS' normalized ``[ymin, xmin, ymax, xmax]`` (clipped to
    ``[0, 1]``): ``x1 = xmin * W``, ``y1 = ymin * H``, ``x2 = xmax * W``, ``y2 = ymax * H``
    (TFDS divides VOC's 1-based pixel corners by the image size, so ``x1``/``y1`` may sit up
    to one original pixel inside the true left/top edge; this is left as TFDS gives it);
  * classes 1..20, TFDS' labels 0..19 plus one (names: ``VOC_CLASSES[k - 1]``); 0 marks the
    padding rows, which are all zeros. Objects marked difficult are included.
  * Boxes empty after clipping (zero width or height: outside the image, or degenerate in
    the annotation) are dropped, silently (TFDS records are read lazily, one at a time);
    an empty box would be matched at IoU 0 with an infinite log-size target.
  * An image with more than ``max_boxes`` objects keeps its first ``max_boxes``.

  Args:
    split: a TFDS split: ``"train"``, ``"validation"``, ``"test"`` (VOC 2012's test split has
      no boxes), or a TFDS split expression such as ``"train+validation"``.
    data_dir: the TFDS data directory; ``None`` uses TFDS' default (``~/tensorflow_datasets``
      or ``$TFDS_DATA_DIR``).
    image_size: ``(height, width)`` of the output images; ``None`` keeps each image's own
      size (records then do not batch).
    max_boxes: ``G``, the padded number of box rows, ``>= 1``.
    year: 2007 or 2012.
    download: let TFDS download and prepare the data set if it is not in ``data_dir``.

  Returns:
    A random-access source (``len``, ``[i]``, ``get_batch(indices)``).

  Raises:
    ImportError: ``tensorflow_datasets`` is not installed.
    ValueError: a bad argument.
  """
  size = _checks.check_size_pair(image_size, "image_size", allow_none=True)
  if isinstance(max_boxes, bool) or not isinstance(max_boxes, (int, np.integer)) or (
      max_boxes < 1):
    raise ValueError(f"`max_boxes` must be a positive int, got {max_boxes!r}.")
  if year not in (2007, 2012):
    raise ValueError(f"`year` must be 2007 or 2012, got {year!r}.")
  tfds = _import_tfds()
  name = f"voc/{year}"
  source = tfds.data_source(name, split=split, data_dir=data_dir, download=download)
  fn = functools.partial(_voc_record, image_size=size, max_boxes=int(max_boxes))
  return _MappedSource(source, fn, f"voc_source({name!r}, split={split!r})")


def oxford_pets_source(split: str, *, data_dir: str | os.PathLike | None = None,
                       image_size: tuple[int, int] | None = (128, 128),
                       download: bool = False) -> _MappedSource:
  """Oxford-IIIT Pet segmentation from TFDS as a random-access source of mask records.

  ``source[i]`` is ``{"image": uint8 [H, W, 3], "mask": uint8 [H, W]}`` with ``(H, W) =
  image_size``: the image resized bilinearly, the mask with nearest neighbours. The data
  set's trimap (``segmentation_mask``) is mapped to mask classes (:data:`PETS_MASK_CLASSES`)
  so that 0 is background, as in the project's other segmentation data:

  ============  ==============  ==========
  trimap value  meaning         mask class
  ============  ==============  ==========
  1             pet             1
  2             background      0
  3             border          2
  ============  ==============  ==========

  Other trimap values raise ``ValueError`` when the record is read.

  Args:
    split: a TFDS split: ``"train"`` (3,680 images), ``"test"`` (3,669) or a split
      expression.
    data_dir: the TFDS data directory; ``None`` uses TFDS' default.
    image_size: ``(height, width)`` of the output; ``None`` keeps each image's own size.
    download: let TFDS download and prepare the data set if it is not in ``data_dir``.

  Returns:
    A random-access source (``len``, ``[i]``, ``get_batch(indices)``).

  Raises:
    ImportError: ``tensorflow_datasets`` is not installed.
    ValueError: a bad argument.
  """
  size = _checks.check_size_pair(image_size, "image_size", allow_none=True)
  tfds = _import_tfds()
  source = tfds.data_source("oxford_iiit_pet", split=split, data_dir=data_dir,
                            download=download)
  fn = functools.partial(_pets_record, image_size=size)
  return _MappedSource(source, fn, f"oxford_pets_source(split={split!r})")
