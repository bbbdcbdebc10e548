"""Readers for the book's own data formats (Atienza, ch. 11-12: the drinks data set).

The book ("Advanced Deep Learning with TensorFlow 2 and Keras", chapters 11 and 12) ships a
small data set of drinks photographed on a table (class ids 1 = water, 2 = soda, 3 = juice;
0 is background) in two label formats:

* **detection** — a CSV file (``labels_train.csv``, ``labels_test.csv``) with a header line
  and one row per object: ``frame,xmin,xmax,ymin,ymax,class_id``. Mind the column order: the
  x extent comes first, then the y extent. :func:`read_book_labels` reads it into xyxy boxes
  grouped by image file, and :class:`BookDetectionSource` pairs them with the images.
* **segmentation** — a NumPy file (``segmentation_train.npy``, ``segmentation_test.npy``)
  holding a pickled dict from image file name to mask. The book stores one-hot masks
  ``[H, W, 1 + num_classes]`` (channel 0 background, channel ``k`` class ``k``);
  :func:`read_book_masks` turns every mask into class ids ``[H, W]``, and
  :class:`BookSegmentationSource` pairs them with the images.

Both sources give records in the project's detection/segmentation convention (the one the
scene generator in :mod:`jaxvision.data.scenes` uses)::

  {"image": uint8 [H, W, 3],
   "boxes": float32 [G, 4]   xyxy pixel boxes, x2/y2 the exclusive right/bottom edges,
   "classes": int32 [G]      class ids from 1; 0 marks a padding row,
   "num_boxes": int32 []     rows >= num_boxes are zeros}
  {"image": uint8 [H, W, 3], "mask": uint8 [H, W] class id per pixel}

Both load the whole data set into memory (the book's drinks train split is about a
thousand 640x480 images, roughly 1 GB at full size; pass ``image_size`` to shrink it), so
``get_batch`` gives :func:`~jaxvision.data.make_pipeline` its fast batch path.
"""

from __future__ import annotations

import csv
import os
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from jaxvision import _checks
from jaxvision.data.pipeline import ArraySource

__all__ = ["BOOK_LABEL_COLUMNS", "read_book_labels", "BookDetectionSource", "read_book_masks",
           "BookSegmentationSource", "write_book_split"]

BOOK_LABEL_COLUMNS = ("frame", "xmin", "xmax", "ymin", "ymax", "class_id")

_FLOAT32_MAX = float(np.finfo(np.float32).max)
_INT32_MAX = int(np.iinfo(np.int32).max)


def _parse_number(text: str, *, path: Path, line: int, column: str) -> float:
  try:
    value = float(text)
  except ValueError:
    raise ValueError(f"{path}, line {line}: column {column!r} must be a number, got "
                     f"{text!r}.") from None
  if not np.isfinite(value):
    raise ValueError(f"{path}, line {line}: column {column!r} must be finite, got {text!r}.")
  return value


def read_book_labels(
    csv_path: str | os.PathLike,
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
  """Reads the book's detection label CSV into xyxy boxes and classes per image file.

  The file has a header line naming the columns ``frame,xmin,xmax,ymin,ymax,class_id``
  (columns are found by name; extra columns are ignored) and one row per object. Rows are
  grouped by ``frame`` (the image file name, relative to the image directory) in the order
  the frames first appear. Boxes come back as ``[x1, y1, x2, y2] = [xmin, ymin, xmax, ymax]``
  — the CSV's ``xmin, xmax, ymin, ymax`` order is *not* xyxy.

  Zero-area boxes (``xmax == xmin`` or ``ymax == ymin``) are dropped, as the book's own
  loader does: a degenerate box cannot be matched or encoded (its log-size offset is
  infinite). A frame all of whose boxes were dropped stays, with no boxes.

  Args:
    csv_path: the CSV file.

  Returns:
    ``{frame: (boxes, classes)}``: float32 ``[n, 4]`` xyxy pixel boxes and int32 ``[n]``
    class ids ``>= 1``.

  Raises:
    FileNotFoundError: no such file.
    ValueError: a missing header or column, a row with too few fields, a coordinate that is
      not a finite number or lies beyond float32, ``xmax < xmin`` or ``ymax < ymin``, or a
      ``class_id`` that is not a positive integer (0 is the background class in the book)
      or is past int32. The message names the file, and the line number and column for a
      bad row.

  >>> import tempfile
  >>> path = Path(tempfile.mkdtemp()) / "labels.csv"
  >>> _ = path.write_text("frame,xmin,xmax,ymin,ymax,class_id\\n"
  ...                     "a.jpg,10,50,20,40,2\\nb.jpg,0,8,0,6,1\\na.jpg,1,3,2,9,3\\n")
  >>> labels = read_book_labels(path)
  >>> list(labels), labels["a.jpg"][0].tolist(), labels["a.jpg"][1].tolist()
  (['a.jpg', 'b.jpg'], [[10.0, 20.0, 50.0, 40.0], [1.0, 2.0, 3.0, 9.0]], [2, 3])
  """
  path = Path(csv_path).expanduser()
  if not path.is_file():
    raise FileNotFoundError(f"Book label CSV {str(path)!r} does not exist.")
  grouped: dict[str, tuple[list[list[float]], list[int]]] = {}
  with open(path, newline="", encoding="utf-8-sig") as f:
    reader = csv.reader(f)
    header = next(reader, None)
    while header is not None and not any(h.strip() for h in header):  # skip blank lines
      header = next(reader, None)
    if header is None:
      raise ValueError(f"{path}: empty file; expected a header line "
                       f"{','.join(BOOK_LABEL_COLUMNS)}.")
    names = [h.strip().lower() for h in header]
    index = {}
    for column in BOOK_LABEL_COLUMNS:
      if column not in names:
        raise ValueError(f"{path}: missing column {column!r} in the header {header!r}; "
                         f"expected {','.join(BOOK_LABEL_COLUMNS)}.")
      index[column] = names.index(column)
    width = max(index.values()) + 1
    for row in reader:
      line = reader.line_num
      if not any(field.strip() for field in row):
        continue
      if len(row) < width:
        raise ValueError(f"{path}, line {line}: expected {len(names)} fields "
                         f"({','.join(names)}), got {len(row)}: {row!r}.")
      frame = row[index["frame"]].strip()
      if not frame:
        raise ValueError(f"{path}, line {line}: empty 'frame' (image file name).")
      xmin, xmax, ymin, ymax = (
          _parse_number(row[index[c]], path=path, line=line, column=c)
          for c in ("xmin", "xmax", "ymin", "ymax"))
      for column, value in zip(("xmin", "xmax", "ymin", "ymax"), (xmin, xmax, ymin, ymax)):
        if abs(value) > _FLOAT32_MAX:
          raise ValueError(f"{path}, line {line}: column {column!r} is {value:g}, beyond "
                           f"float32 (the boxes' dtype).")
      if xmax < xmin:
        raise ValueError(f"{path}, line {line}: xmax {xmax:g} < xmin {xmin:g} (the columns "
                         f"are frame,xmin,xmax,ymin,ymax,class_id).")
      if ymax < ymin:
        raise ValueError(f"{path}, line {line}: ymax {ymax:g} < ymin {ymin:g} (the columns "
                         f"are frame,xmin,xmax,ymin,ymax,class_id).")
      class_text = row[index["class_id"]].strip()
      class_value = _parse_number(class_text, path=path, line=line, column="class_id")
      if class_value != int(class_value) or class_value < 1:
        raise ValueError(f"{path}, line {line}: class_id must be a positive integer (0 is "
                         f"the background class), got {class_text!r}.")
      if class_value > _INT32_MAX:
        raise ValueError(f"{path}, line {line}: column 'class_id' is {class_text!r}, past "
                         f"the largest int32 ({_INT32_MAX}), the classes' dtype.")
      boxes, classes = grouped.setdefault(frame, ([], []))
      if xmax == xmin or ymax == ymin:
        continue  # zero-area box, dropped (see the docstring)
      boxes.append([xmin, ymin, xmax, ymax])
      classes.append(int(class_value))
  return {frame: (np.asarray(boxes, np.float32).reshape(-1, 4),
                  np.asarray(classes, np.int32).reshape(-1))
          for frame, (boxes, classes) in grouped.items()}


def _load_image(path: Path) -> np.ndarray:
  """An image file as uint8 RGB ``[H, W, 3]`` (PIL; palette, grey and RGBA converted)."""
  from PIL import Image  # pylint: disable=g-import-not-at-top

  if not path.is_file():
    raise FileNotFoundError(f"Image {str(path)!r} does not exist.")
  with Image.open(path) as image:
    return np.asarray(image.convert("RGB"), dtype=np.uint8)


def _resize_image(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
  """Bilinear resize of uint8 ``[H, W, 3]`` to ``size = (height, width)``."""
  from PIL import Image  # pylint: disable=g-import-not-at-top

  if image.shape[:2] == size:
    return image
  resized = Image.fromarray(image).resize((size[1], size[0]), Image.BILINEAR)
  return np.asarray(resized, dtype=np.uint8)


def _resize_mask(mask: np.ndarray, size: tuple[int, int]) -> np.ndarray:
  """Nearest-neighbour resize of uint8 ``[H, W]`` class ids to ``size = (height, width)``."""
  from PIL import Image  # pylint: disable=g-import-not-at-top

  if mask.shape == size:
    return mask
  resized = Image.fromarray(mask).resize((size[1], size[0]), Image.NEAREST)
  return np.asarray(resized, dtype=np.uint8)


def _stack_images(images: list[np.ndarray], names: list[str], what: str) -> np.ndarray:
  shapes = {im.shape for im in images}
  if len(shapes) > 1:
    first = images[0].shape
    odd = next(n for n, im in zip(names, images) if im.shape != first)
    raise ValueError(f"{what} have different sizes ({names[0]!r} is {first[:2]}, {odd!r} is "
                     f"{images[names.index(odd)].shape[:2]}); pass `image_size=(height, "
                     f"width)` to resize them all.")
  return np.stack(images)


class BookDetectionSource(ArraySource):
  """The book's detection data (images + label CSV) as a grain random-access source.

  ``source[i]`` is ``{"image": uint8 [H, W, 3], "boxes": float32 [G, 4], "classes": int32
  [G], "num_boxes": int32 []}`` (see the module notes for the convention), ``G =
  max_boxes``; records follow the order in which frames first appear in the CSV. Boxes are
  clipped to the image (the book's annotations may overhang the border by a pixel) and, with
  ``image_size``, scaled with the image. A box that lies wholly outside its image (or on
  its border) is empty after clipping: it is dropped with its class, as
  :func:`read_book_labels` drops zero-area rows, and one ``UserWarning`` per CSV file names
  the file and the frames that lost boxes (an empty box has IoU 0 with every anchor and an
  infinite log-size target, so it must not reach ``match_anchors`` / ``encode_boxes``).

  Args:
    image_dir: the directory the CSV's ``frame`` names are relative to.
    labels_csv: the label CSV, read with :func:`read_book_labels`.
    max_boxes: ``G``, the padded number of box rows; ``None`` uses the largest number of
      boxes of any frame in the CSV (at least 1). A frame with more boxes raises.
    image_size: ``(height, width)`` to resize every image to (bilinear); ``None`` keeps the
      files' size, which must then be the same for all images.

  Attributes:
    frames: the image file names, in record order.

  Raises:
    FileNotFoundError: the CSV or an image it lists does not exist (the message names it).
    ValueError: a malformed CSV, ``max_boxes`` smaller than a frame's box count (after
      dropping empty boxes), images of different sizes without ``image_size``, or an empty
      CSV.

  >>> import tempfile
  >>> from PIL import Image
  >>> d = Path(tempfile.mkdtemp())
  >>> Image.new("RGB", (8, 6)).save(d / "a.png")
  >>> _ = (d / "labels.csv").write_text("frame,xmin,xmax,ymin,ymax,class_id\\n"
  ...                                   "a.png,2,6,0,3,1\\n")
  >>> src = BookDetectionSource(d, d / "labels.csv", max_boxes=2, image_size=(12, 4))
  >>> r = src[0]
  >>> r["image"].shape, r["boxes"].tolist(), r["classes"].tolist(), int(r["num_boxes"])
  ((12, 4, 3), [[1.0, 0.0, 3.0, 6.0], [0.0, 0.0, 0.0, 0.0]], [1, 0], 1)
  """

  def __init__(self, image_dir: str | os.PathLike, labels_csv: str | os.PathLike, *,
               max_boxes: int | None = None,
               image_size: tuple[int, int] | None = None):
    labels = read_book_labels(labels_csv)
    if not labels:
      raise ValueError(f"{labels_csv}: no labelled frames.")
    size = _checks.check_size_pair(image_size, "image_size", allow_none=True)
    most = max(len(classes) for _, classes in labels.values())
    if max_boxes is None:
      max_boxes = max(most, 1)
    elif isinstance(max_boxes, bool) or not isinstance(max_boxes, (int, np.integer)) or (
        max_boxes < 1):
      raise ValueError(f"`max_boxes` must be a positive int or None, got {max_boxes!r}.")
    max_boxes = int(max_boxes)
    directory = Path(image_dir).expanduser()
    frames = list(labels)
    n = len(frames)
    images = []
    boxes = np.zeros((n, max_boxes, 4), np.float32)
    classes = np.zeros((n, max_boxes), np.int32)
    num_boxes = np.zeros((n,), np.int32)
    dropped: dict[str, int] = {}  # frame -> boxes emptied by clipping
    for i, frame in enumerate(frames):
      frame_boxes, frame_classes = labels[frame]
      image = _load_image(directory / frame)
      height, width = image.shape[:2]
      frame_boxes = np.clip(frame_boxes, 0, np.array([width, height, width, height],
                                                     np.float32))
      keep = (frame_boxes[:, 2] > frame_boxes[:, 0]) & (frame_boxes[:, 3] > frame_boxes[:, 1])
      if not keep.all():
        dropped[frame] = int((~keep).sum())
        frame_boxes, frame_classes = frame_boxes[keep], frame_classes[keep]
      count = len(frame_classes)
      if count > max_boxes:
        raise ValueError(f"{frame!r} has {count} boxes in {labels_csv}, more than "
                         f"`max_boxes` = {max_boxes}.")
      if size is not None:
        image = _resize_image(image, size)
        scale = np.array([size[1] / width, size[0] / height] * 2, np.float32)
        frame_boxes = frame_boxes * scale
      images.append(image)
      boxes[i, :count] = frame_boxes
      classes[i, :count] = frame_classes
      num_boxes[i] = count
    if dropped:
      named = ", ".join(f"{frame!r} ({k})" for frame, k in list(dropped.items())[:5])
      more = f" and {len(dropped) - 5} more frames" if len(dropped) > 5 else ""
      warnings.warn(f"{labels_csv}: dropped {sum(dropped.values())} box(es) that lie outside "
                    f"their image (empty after clipping to it) in frame {named}{more}.",
                    UserWarning, stacklevel=2)
    self.frames = frames
    super().__init__({"image": _stack_images(images, frames, "Images"), "boxes": boxes,
                      "classes": classes, "num_boxes": num_boxes})


def read_book_masks(npy_path: str | os.PathLike) -> dict[str, np.ndarray]:
  """Reads the book's segmentation ground truth (``segmentation_*.npy``) as class-id masks.

  The file holds a pickled dict ``{image file name: mask}`` (saved with ``np.save`` of a
  dict; read back with ``np.load(path, allow_pickle=True).item()``). Unpickling can run
  arbitrary code: only read files you trust. Masks may be

  * ``[H, W]`` (or ``[H, W, 1]``) integer class ids, returned as they are (as uint8), or
  * ``[H, W, C]`` with ``C >= 2`` one-hot or per-class score channels, channel ``k`` for
    class ``k`` — the book's format: ``C = 4``, channel 0 background, channels 1..3 the
    drinks — converted with ``argmax`` over the channels (ties and all-zero pixels go to the
    lowest channel, i.e. background).

  Args:
    npy_path: the ``.npy`` file.

  Returns:
    ``{file name: uint8 [H, W] mask of class ids}``, in the file's order.

  Raises:
    FileNotFoundError: no such file.
    ValueError: the file does not hold a dict of masks, or a mask has a bad shape, a
      non-integer or negative class id, or more than 256 classes.

  >>> import tempfile
  >>> path = Path(tempfile.mkdtemp()) / "segmentation_train.npy"
  >>> one_hot = np.zeros((2, 3, 4), np.uint8)
  >>> one_hot[..., 0] = 1
  >>> one_hot[0, 1] = [0, 0, 1, 0]
  >>> np.save(path, {"a.jpg": one_hot})
  >>> read_book_masks(path)["a.jpg"].tolist()
  [[0, 2, 0], [0, 0, 0]]
  """
  path = Path(npy_path).expanduser()
  if not path.is_file():
    raise FileNotFoundError(f"Book segmentation file {str(path)!r} does not exist.")
  loaded = np.load(path, allow_pickle=True)
  if isinstance(loaded, np.ndarray) and loaded.dtype == object and loaded.size == 1:
    loaded = loaded.reshape(()).item()
  if not isinstance(loaded, Mapping):
    raise ValueError(f"{path}: expected a pickled dict of file name -> mask (as the book's "
                     f"segmentation_*.npy), got {type(loaded).__name__}.")
  masks = {}
  for name, value in loaded.items():
    mask = np.asarray(value)
    if mask.ndim == 3 and mask.shape[-1] == 1:
      mask = mask[..., 0]
    if mask.ndim == 3:
      if mask.shape[-1] > 256:
        raise ValueError(f"{path}: mask {name!r} has {mask.shape[-1]} channels; at most 256 "
                         f"classes fit uint8.")
      mask = np.argmax(mask, axis=-1)
    elif mask.ndim == 2:
      if mask.size and (not np.all(np.isfinite(mask)) or np.any(mask != np.round(mask))):
        raise ValueError(f"{path}: mask {name!r} of shape {mask.shape} must hold integer "
                         f"class ids.")
      if mask.size and (mask.min() < 0 or mask.max() > 255):
        raise ValueError(f"{path}: mask {name!r} has class ids in [{mask.min()}, "
                         f"{mask.max()}]; they must be in [0, 255].")
    else:
      raise ValueError(f"{path}: mask {name!r} must be [H, W] class ids or [H, W, C] "
                       f"channels, got shape {mask.shape}.")
    masks[str(name)] = mask.astype(np.uint8)
  return masks


class BookSegmentationSource(ArraySource):
  """The book's segmentation data (images + ``segmentation_*.npy``) as a grain source.

  ``source[i]`` is ``{"image": uint8 [H, W, 3], "mask": uint8 [H, W]}`` with class ids per
  pixel (0 background); records follow the order of the ``.npy`` dict.

  Args:
    image_dir: the directory the dict's file names are relative to.
    masks_npy: the ``.npy`` file, read with :func:`read_book_masks` (only open trusted
      files: it is a pickle).
    image_size: ``(height, width)`` to resize every image (bilinear) and mask (nearest
      neighbour, so class ids stay class ids) to; ``None`` keeps the files' size, which must
      then be the same for all images.

  Attributes:
    frames: the image file names, in record order.

  Raises:
    FileNotFoundError: the ``.npy`` file or an image it names does not exist.
    ValueError: a malformed ``.npy`` file, a mask whose size differs from its image's,
      images of different sizes without ``image_size``, or no masks at all.

  >>> import tempfile
  >>> from PIL import Image
  >>> d = Path(tempfile.mkdtemp())
  >>> Image.new("RGB", (3, 2)).save(d / "a.png")
  >>> np.save(d / "seg.npy", {"a.png": np.array([[0, 1, 3], [0, 0, 2]])})
  >>> src = BookSegmentationSource(d, d / "seg.npy", image_size=(4, 6))
  >>> src[0]["image"].shape, src[0]["mask"].tolist()
  ((4, 6, 3), [[0, 0, 1, 1, 3, 3], [0, 0, 1, 1, 3, 3], [0, 0, 0, 0, 2, 2], [0, 0, 0, 0, 2, 2]])
  """

  def __init__(self, image_dir: str | os.PathLike, masks_npy: str | os.PathLike, *,
               image_size: tuple[int, int] | None = None):
    masks = read_book_masks(masks_npy)
    if not masks:
      raise ValueError(f"{masks_npy}: no masks.")
    size = _checks.check_size_pair(image_size, "image_size", allow_none=True)
    directory = Path(image_dir).expanduser()
    names = list(masks)
    images, resized_masks = [], []
    for name in names:
      image = _load_image(directory / name)
      mask = masks[name]
      if image.shape[:2] != mask.shape:
        raise ValueError(f"{name!r}: the image is {image.shape[:2]} (height, width) but its "
                         f"mask in {masks_npy} is {mask.shape}.")
      if size is not None:
        image = _resize_image(image, size)
        mask = _resize_mask(mask, size)
      images.append(image)
      resized_masks.append(mask)
    self.frames = names
    super().__init__({"image": _stack_images(images, names, "Images"),
                      "mask": np.stack(resized_masks)})


def write_book_split(directory: str | os.PathLike, split: str, records: Mapping[str, Any], *,
                     class_names: Sequence[str] | None = None) -> Path:
  """Writes records in the book's layout, so any data (e.g. scenes of another style) can be
  read back by :class:`BookDetectionSource` / :class:`BookSegmentationSource` and the CLIs'
  ``--dataset book:DIR``.

  Args:
    directory: created if missing.
    split: ``"train"`` or ``"test"`` (file names ``labels_<split>.csv``,
      ``segmentation_<split>.npy``, images ``<split>_<i>.png``).
    records: padded arrays ``{"image" uint8 [N, H, W, 3], "boxes" [N, G, 4] xyxy,
      "classes" [N, G], "num_boxes" [N]}``, and optionally ``"mask" [N, H, W]`` class ids
      (written as the book's one-hot masks; needs ``class_names``).
    class_names: written to ``classes.txt`` (index 0 the background) when given.

  Returns:
    The directory.
  """
  from PIL import Image  # pylint: disable=import-outside-toplevel
  if split not in ("train", "test"):
    raise ValueError(f"`split` must be 'train' or 'test', got {split!r}.")
  root = Path(directory)
  root.mkdir(parents=True, exist_ok=True)
  images = np.asarray(records["image"])
  if images.ndim != 4 or images.shape[-1] != 3 or images.dtype != np.uint8:
    raise ValueError(f"`records['image']` must be uint8 [N, H, W, 3], got {images.dtype} "
                     f"{images.shape}.")
  boxes, classes = np.asarray(records["boxes"]), np.asarray(records["classes"])
  num = np.asarray(records["num_boxes"]).reshape(-1)
  if not len(boxes) == len(classes) == len(num) == len(images):
    raise ValueError(f"`records` arrays must have one row per image: image {len(images)}, "
                     f"boxes {len(boxes)}, classes {len(classes)}, num_boxes {len(num)}.")
  if "mask" in records:
    if class_names is None:
      raise ValueError("writing masks needs `class_names` (the one-hot depth).")
    top = int(np.max(records["mask"])) if len(images) else 0
    if top >= len(class_names):
      raise ValueError(f"`records['mask']` holds class id {top} but `class_names` names "
                       f"{len(class_names)} classes.")
  rows = [",".join(BOOK_LABEL_COLUMNS)]
  masks = {}
  for i, image in enumerate(images):
    name = f"{split}_{i}.png"
    Image.fromarray(image).save(root / name)
    for (x1, y1, x2, y2), c in zip(boxes[i, :num[i]], classes[i, :num[i]]):
      rows.append(f"{name},{float(x1)!r},{float(x2)!r},{float(y1)!r},{float(y2)!r},{int(c)}")
    if "mask" in records:
      masks[name] = np.eye(len(class_names), dtype=np.uint8)[np.asarray(records["mask"][i])]
  (root / f"labels_{split}.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")
  if masks:
    np.save(root / f"segmentation_{split}.npy", masks, allow_pickle=True)
  if class_names is not None:
    (root / "classes.txt").write_text("\n".join(class_names) + "\n", encoding="utf-8")
  return root
