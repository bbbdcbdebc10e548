"""Every figure the library writes: detections, segmentation masks, confusion matrices, plots.

All functions write one PNG and need no display:

* :func:`save_detections`: a grid of images with predicted boxes (solid, inside the box edge)
  and ground-truth boxes (dashed, just outside it), class-coloured, labelled and with a legend;
  :func:`save_scene_preview` is its case for the padded arrays of
  :mod:`jaxvision.data.scenes`.
* :func:`save_segmentation_triptychs`: rows of input / ground truth / prediction, one fixed
  colour per class (:func:`class_colours`), with a legend.
* :func:`save_confusion_matrix`: a heat map of counts; :func:`hungarian_order` puts the
  columns of a cluster-by-class matrix in the order of the best one-to-one matching.
* :func:`save_line_plot`: one line per series (e.g. per implementation and setting).

Raster figures are drawn with PIL (pixel-exact boxes and masks, DejaVu Sans from matplotlib's
fonts when available); plots with matplotlib ``Figure`` objects on an Agg canvas rather than
``pyplot``: no global backend switch, no figure registry to leak, safe in scripts, tests and
threads.
"""

from __future__ import annotations

import colorsys
import functools
import math
import os
from typing import Any, Literal, Mapping, NamedTuple, Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageFont

__all__ = [
    "class_colours", "TileLayout", "save_detections", "save_scene_preview",
    "save_segmentation_triptychs", "hungarian_order", "save_confusion_matrix",
    "save_line_plot", "save_instance_masks", "instance_class_map", "save_image_grid",
]

# Class id -> colour; class 0 (background) black, then well-separated colours
# (Sasha Trubetskoy's "20 distinct colours", the first ten).
_PALETTE = np.array([
    [0, 0, 0], [230, 25, 75], [60, 180, 75], [255, 225, 25], [0, 130, 200], [245, 130, 48],
    [145, 30, 180], [70, 240, 240], [240, 50, 230], [210, 245, 60], [250, 190, 212],
], np.uint8)

_WHITE, _BLACK, _GREY = (255, 255, 255), (0, 0, 0), (90, 90, 90)
_GAP = 8  # pixels between tiles and around the figure


def class_colours(num_classes: int) -> np.ndarray:
  """``[num_classes, 3]`` uint8 fixed colours, class 0 (background) black, all distinct.

  The first 11 come from a hand-picked palette; more classes (e.g. VOC's 21) get further
  hues spaced by the golden angle, so a class keeps its colour in every figure.

  >>> class_colours(3).tolist()
  [[0, 0, 0], [230, 25, 75], [60, 180, 75]]
  """
  num_classes = int(num_classes)
  if num_classes < 0:
    raise ValueError(f"`num_classes` must be >= 0, got {num_classes}.")
  extra = []
  for k in range(max(0, num_classes - len(_PALETTE))):
    hue = (0.13 + 0.381966 * k) % 1.0
    sat, val = (0.55, 0.95) if k % 2 else (0.9, 0.7)
    extra.append(np.round(np.array(colorsys.hsv_to_rgb(hue, sat, val)) * 255))
  colours = np.concatenate([_PALETTE, np.array(extra, np.uint8).reshape(-1, 3)])
  return colours[:num_classes]


class TileLayout(NamedTuple):
  """Where a raster figure put things (for tests and for callers that annotate further).

  Attributes:
    size: ``(width, height)`` of the PNG in pixels.
    scales: each image's magnification (tile pixels per image pixel), in image order.
    origins: ``(x, y)`` of each tile's top-left pixel, in drawing order (row-major).
  """
  size: tuple[int, int]
  scales: list[float]
  origins: list[tuple[int, int]]


# ---------------------------------------------------------------------------------------------
# Shared raster helpers.


@functools.lru_cache(maxsize=None)
def _font(size: int, bold: bool = False) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
  """DejaVu Sans (shipped with matplotlib) at ``size`` pixels; PIL's default font otherwise."""
  try:
    from matplotlib import font_manager  # pylint: disable=import-outside-toplevel
    path = font_manager.findfont(
        font_manager.FontProperties(family="DejaVu Sans", weight="bold" if bold else "normal"),
        fallback_to_default=True)
    return ImageFont.truetype(path, size)
  except Exception:  # noqa: BLE001 - any font problem: fall back to the built-in font
    try:
      return ImageFont.load_default(size)
    except TypeError:  # Pillow < 10.1 has one fixed size
      return ImageFont.load_default()


def _text_size(font, text: str) -> tuple[int, int]:
  left, top, right, bottom = font.getbbox(text)
  return int(math.ceil(right - min(left, 0))), int(math.ceil(bottom - min(top, 0)))


def _ink(colour) -> tuple[int, int, int]:
  """Black or white, whichever reads better on ``colour``."""
  r, g, b = (int(c) for c in colour)
  return _BLACK if 0.299 * r + 0.587 * g + 0.114 * b > 140 else _WHITE


def _rgb(colour) -> tuple[int, int, int]:
  return tuple(int(c) for c in colour)


def _to_uint8(images: np.ndarray, name: str) -> np.ndarray:
  if images.dtype == np.uint8:
    return images
  if not (np.issubdtype(images.dtype, np.number) or images.dtype == bool):
    raise ValueError(f"`{name}` must hold numbers, got dtype {images.dtype}.")
  images = images.astype(np.float32)
  if images.size and images.max() <= 1.0:  # [0, 1] floats
    images = images * 255.0
  return np.clip(np.round(images), 0, 255).astype(np.uint8)


def _image_list(images: Any, name: str = "images") -> list[np.ndarray]:
  """``[H, W, 3]`` uint8 images from an ``[S, H, W(, 1 or 3)]`` array or a list of images
  (sizes may differ); uint8, or floats in ``[0, 1]`` (or ``[0, 255]``)."""
  if isinstance(images, (list, tuple)):
    out = []
    for i, image in enumerate(images):
      image = np.asarray(image)
      if image.ndim == 3 and image.shape[-1] == 1:
        image = image[..., 0]
      if image.ndim == 2:
        image = np.repeat(image[..., None], 3, axis=-1)
      if image.ndim != 3 or image.shape[-1] != 3 or 0 in image.shape:
        raise ValueError(f"`{name}[{i}]` must be [H, W, 3] or [H, W] with H, W > 0, got "
                         f"{image.shape}.")
      out.append(_to_uint8(image, name))
    if not out:
      raise ValueError(f"`{name}` must hold at least one image.")
    return out
  array = np.asarray(images)
  shape = array.shape
  if array.ndim == 4 and array.shape[-1] == 1:
    array = array[..., 0]
  if array.ndim == 3:
    array = np.repeat(array[..., None], 3, axis=-1)
  if array.ndim != 4 or array.shape[-1] != 3 or 0 in array.shape:
    raise ValueError(f"`{name}` must be [S, H, W, 3] (or [S, H, W] greyscale) with S, H, W > 0,"
                     f" or a list of [H, W, 3] images, got shape {shape}.")
  return list(_to_uint8(array, name))


def _mask_list(masks: Any, images: list[np.ndarray], name: str) -> list[np.ndarray]:
  """Integer ``[H, W]`` masks, one per image and of its size."""
  masks = list(masks) if isinstance(masks, (list, tuple)) else list(np.asarray(masks)) if (
      np.ndim(masks) == 3) else None
  if masks is None or len(masks) != len(images):
    raise ValueError(f"`{name}` must be [S, H, W] (or a list of [H, W]) with one mask per "
                     f"image ({len(images)}), got shape {np.shape(masks)}.")
  out = []
  for i, (mask, image) in enumerate(zip(masks, images)):
    mask = np.asarray(mask)
    if mask.shape != image.shape[:2] or not np.issubdtype(mask.dtype, np.integer):
      raise ValueError(f"`{name}[{i}]` must be integer class ids of the image's size "
                       f"{image.shape[:2]}, got {mask.shape} {mask.dtype}.")
    out.append(mask)
  return out


def _fit_scale(width: int, min_tile: int, max_tile: int) -> float:
  """Magnification for an image ``width`` pixels wide: the smallest integer reaching
  ``min_tile`` (pixels stay sharp), 1, or a reduction down to ``max_tile``."""
  if width < min_tile:
    return float(max(1, min(-(-min_tile // width), max_tile // width)))
  return max_tile / width if width > max_tile else 1.0


def _resize(image: np.ndarray, scale: float, *, smooth: bool = True) -> np.ndarray:
  """Integer scales repeat pixels; others resample (bilinear, or nearest for class masks)."""
  if scale == 1:
    return image
  if float(scale).is_integer():
    s = int(scale)
    return np.repeat(np.repeat(image, s, axis=0), s, axis=1)
  h, w = image.shape[:2]
  size = (max(1, round(w * scale)), max(1, round(h * scale)))
  method = Image.BILINEAR if smooth else Image.NEAREST
  return np.asarray(Image.fromarray(image).resize(size, method))


def _tag(draw: ImageDraw.ImageDraw, anchor: tuple[int, int], text: str, font, *, fill,
         ink, outline=None, above: bool, bounds: tuple[int, int]) -> None:
  """A text label on a filled rectangle, above (or below) ``anchor``, kept inside ``bounds``."""
  tw, th = _text_size(font, text)
  pad = 2
  w, h = tw + 2 * pad, th + 2 * pad
  x = min(max(anchor[0], 0), max(bounds[0] - w, 0))
  y = anchor[1] - h if above else anchor[1]
  if y < 0:
    y = anchor[1] if above else 0  # no room above: inside the box's top
  if y + h > bounds[1]:
    y = max(bounds[1] - h, 0)
  draw.rectangle([x, y, x + w - 1, y + h - 1], fill=fill, outline=outline,
                 width=1 if outline is not None else 0)
  draw.text((x + pad, y + pad), text, fill=ink, font=font, anchor="la")


def _dashed_rectangle(draw: ImageDraw.ImageDraw, box: Sequence[int], colour, *, width: int,
                      dash: int, gap: int) -> None:
  """Dashed outline of ``box`` (inclusive pixel corners), ``width`` pixels drawn inward."""
  x1, y1, x2, y2 = box
  for start, end, fixed, horizontal in ((x1, x2, y1, True), (x1, x2, y2 - width + 1, True),
                                        (y1, y2, x1, False), (y1, y2, x2 - width + 1, False)):
    pos = start
    while pos <= end:
      stop = min(pos + dash - 1, end)
      if horizontal:
        draw.rectangle([pos, fixed, stop, fixed + width - 1], fill=colour)
      else:
        draw.rectangle([fixed, pos, fixed + width - 1, stop], fill=colour)
      pos += dash + gap


def _legend_items(draw_items: list, font, width: int) -> tuple[list, int]:
  """Flow layout of legend items ``(icon_width, text, icon or None)`` into lines of at most
  ``width`` pixels; returns ``[(x, y, item)]`` and the height."""
  _, th = _text_size(font, "Ag")
  line_h = th + 8
  x, y, placed = _GAP, 0, []
  for item in draw_items:
    w = (item[0] + 6 if item[2] is not None else 0) + _text_size(font, item[1])[0] + 18
    if x + w > width - _GAP and x > _GAP:
      x, y = _GAP, y + line_h
    placed.append((x, y, item))
    x += w
  return placed, (y + line_h if draw_items else 0)


def _draw_legend(draw: ImageDraw.ImageDraw, placed: list, top: int, font) -> None:
  _, th = _text_size(font, "Ag")
  for x, y, (icon_w, text, icon) in placed:
    if icon is not None:
      icon(draw, x, top + y + 2, icon_w, th)
      x += icon_w + 6
    draw.text((x, top + y + 2), text, fill=_BLACK, font=font, anchor="la")


def _swatch(colour):
  def icon(draw, x, y, w, h):
    draw.rectangle([x, y, x + w - 1, y + h - 1], fill=_rgb(colour), outline=_GREY)
  return icon


def _class_name(class_names: Sequence[str], c: int) -> str:
  return str(class_names[c]) if 0 <= c < len(class_names) else str(c)


def _save(image: Image.Image, path: str | os.PathLike) -> None:
  os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
  image.save(os.fspath(path), format="PNG")


# ---------------------------------------------------------------------------------------------
# Detections.


def _as_boxes(entries: Any, count: int, name: str, *, need_scores: bool,
              num_classes: int) -> list[tuple[np.ndarray, np.ndarray, np.ndarray | None]]:
  if entries is None:
    return []
  if isinstance(entries, Mapping) or len(entries) != count:
    raise ValueError(f"`{name}` must be a list of {count} dicts (one per image), got "
                     f"{type(entries).__name__}"
                     + ("" if isinstance(entries, Mapping) else f" of length {len(entries)}")
                     + ".")
  out = []
  for i, entry in enumerate(entries):
    if not isinstance(entry, Mapping) or "boxes" not in entry or "classes" not in entry:
      raise ValueError(f"`{name}[{i}]` must be a dict with 'boxes' and 'classes'.")
    boxes = np.asarray(entry["boxes"], np.float64)
    classes = np.asarray(entry["classes"])
    if boxes.size == 0:
      boxes = boxes.reshape(0, 4)
    if boxes.ndim != 2 or boxes.shape[1] != 4 or classes.shape != boxes.shape[:1]:
      raise ValueError(f"`{name}[{i}]`: 'boxes' must be [n, 4] and 'classes' [n], got "
                       f"{boxes.shape} and {classes.shape}.")
    if not np.all(np.isfinite(boxes)):
      raise ValueError(f"`{name}[{i}]`: 'boxes' must be finite.")
    if classes.size and (not np.issubdtype(classes.dtype, np.number)
                         or np.any(classes != np.round(classes))
                         or classes.max() >= num_classes):
      raise ValueError(f"`{name}[{i}]`: 'classes' must be integer ids below "
                       f"len(class_names) = {num_classes}, got {classes.tolist()}.")
    scores = None
    if need_scores:
      if "scores" not in entry:
        raise ValueError(f"`{name}[{i}]` has no 'scores'; pass scores=False to omit them.")
      scores = np.asarray(entry["scores"], np.float64)
      if scores.shape != classes.shape:
        raise ValueError(f"`{name}[{i}]`: 'scores' must be [n] like 'classes', got "
                         f"{scores.shape}.")
    keep = classes > 0  # 0 = background, negative = padding
    out.append((boxes[keep], classes[keep].astype(np.int64),
                None if scores is None else scores[keep]))
  return out


def save_detections(
    path: str | os.PathLike,
    images: Any,
    detections: Sequence[Mapping[str, Any]] | None,
    *,
    ground_truth: Sequence[Mapping[str, Any]] | None = None,
    class_names: Sequence[str],
    scores: bool = True,
    masks: Any = None,
    columns: int = 4,
    min_tile: int = 320,
    max_tile: int = 640,
    title: str | None = None,
    side_by_side: bool = False,
    captions: Sequence[str] | None = None,
) -> TileLayout:
  """Writes a grid of images with predicted and ground-truth boxes, labelled, as one PNG.

  Predictions are solid rectangles drawn just *inside* the box edge, tagged ``"name score"``
  on a tag filled with the class colour above the box; ground truth is dashed and drawn just
  *outside* the edge, tagged ``"name"`` on a white tag below the box, so a perfect prediction
  shows both lines side by side. Class colours are :func:`class_colours`; a legend under the
  grid explains the line styles and colours. Each tile is captioned with the image index and
  the number of boxes of each kind.

  Args:
    path: the PNG file (its directory is created).
    images: ``[S, H, W, 3]`` (or ``[S, H, W]`` greyscale) uint8, or float in ``[0, 1]``; or
      a list of ``[H, W, 3]`` images of any sizes.
    detections: one dict per image, ``{"boxes": [n, 4] xyxy pixels (x2, y2 exclusive),
      "scores": [n], "classes": [n] ints}``; class ``0`` (background) and negative ids
      (padding) are skipped. None to draw ground truth only.
    ground_truth: one dict per image, ``{"boxes": [g, 4], "classes": [g]}``, or None.
    class_names: names by class id (id 0 the background); every class id must be smaller
      than ``len(class_names)``.
    scores: print each prediction's score after its class name (the dicts then need
      ``"scores"``).
    masks: optional ``[S, H, W]`` (or a list of ``[H, W]``) per-pixel class ids, drawn in
      class colours under each image.
    columns: images per row of the grid.
    min_tile: smallest tile width in pixels; narrower images are magnified by the smallest
      integer factor that reaches it (nearest neighbour, so pixels stay sharp).
    max_tile: widest tile; wider images are reduced (bilinear) to this width.
    title: a line of text above the grid.
    side_by_side: with both ``detections`` and ``ground_truth``, draw every image twice,
      the ground truth alone and then the predictions alone (crowded scenes stay readable);
      ``columns`` then counts tiles, two per image (rounded up to an even number so a
      pair shares a row), and the layout's ``scales`` and ``origins`` are per tile.
    captions: one caption per tile in place of the automatic ones.

  Returns:
    The :class:`TileLayout` (image size, magnifications and top-left corner of each tile).

  >>> import tempfile
  >>> images = np.zeros((1, 40, 40, 3), np.uint8)
  >>> det = [{"boxes": [[5, 5, 30, 30]], "scores": [0.9], "classes": [1]}]
  >>> gt = [{"boxes": [[6, 4, 30, 31]], "classes": [1]}]
  >>> with tempfile.TemporaryDirectory() as d:
  ...   save_detections(os.path.join(d, "det.png"), images, det, ground_truth=gt,
  ...                   class_names=["background", "cat"]).scales
  [8.0]
  """
  images = _image_list(images)
  count = len(images)
  given_captions = captions
  class_names = [str(n) for n in class_names]
  if not class_names:
    raise ValueError("`class_names` must name at least the background class 0.")
  if int(columns) < 1:
    raise ValueError(f"`columns` must be >= 1, got {columns}.")
  if not 1 <= int(min_tile) <= int(max_tile):
    raise ValueError(f"`min_tile` and `max_tile` must satisfy 1 <= min_tile <= max_tile, got "
                     f"{min_tile} and {max_tile}.")
  preds = _as_boxes(detections, count, "detections", need_scores=bool(scores),
                    num_classes=len(class_names))
  truths = _as_boxes(ground_truth, count, "ground_truth", need_scores=False,
                     num_classes=len(class_names))
  masks = None if masks is None else _mask_list(masks, images, "masks")

  scales = [_fit_scale(im.shape[1], int(min_tile), int(max_tile)) for im in images]
  cell_w = max(round(im.shape[1] * s) for im, s in zip(images, scales))
  line = max(2, round(cell_w / 200))
  label_font = _font(int(np.clip(round(cell_w / 24), 12, 18)))
  colours = class_colours(len(class_names))

  pair = bool(side_by_side) and bool(truths) and bool(preds)
  if pair:
    columns = int(columns) + int(columns) % 2
  tiles, captions, tile_scales = [], [], []
  for i, (image, scale) in enumerate(zip(images, scales)):
    kinds = ((True, False), (False, True)) if pair else ((bool(truths), bool(preds)),)
    for with_truth, with_preds in kinds:
      tiles.append(_detection_tile(image, scale, truths[i] if with_truth else None,
                                   preds[i] if with_preds else None, masks, i, colours,
                                   class_names, line, label_font))
      tile_scales.append(scale)
      if pair:
        captions.append(f"image {i}: ground truth ({len(truths[i][0])})" if with_truth else
                        f"image {i}: predicted ({len(preds[i][0])})")
      else:
        caption = f"image {i}"
        if detections is not None:
          caption += f": {len(preds[i][0])} predicted"
        if ground_truth is not None:
          caption += f"{',' if detections is not None else ':'} {len(truths[i][0])} true"
        captions.append(caption)
  if given_captions is not None:
    if len(given_captions) != len(tiles):
      raise ValueError(f"`captions` has {len(given_captions)} entries for {len(tiles)} tiles.")
    captions = [str(c) for c in given_captions]
  return _grid(path, tiles, captions, tile_scales, cell_w=cell_w, columns=columns, title=title,
               detections=detections, ground_truth=ground_truth, scores=scores, masks=masks,
               preds=preds, truths=truths, class_names=class_names, colours=colours)


def _detection_tile(image, scale, truth, pred, masks, i, colours, class_names, line,
                    label_font) -> np.ndarray:
  """One image with its ground truth (``truth``) and/or predictions (``pred``) drawn."""
  tile = Image.fromarray(_resize(image, scale))
  bounds = tile.size
  draw = ImageDraw.Draw(tile)
  tags = []
  if truth is not None:
    for box, c in zip(*truth[:2]):
      x1, y1, x2, y2 = (int(round(v * scale)) for v in box)
      # Outside the edge: the box's pixels are x1 .. x2 - 1.
      outer = [x1 - line, y1 - line, max(x2 - 1, x1) + line, max(y2 - 1, y1) + line]
      _dashed_rectangle(draw, outer, _rgb(colours[c]), width=line, dash=3 * line + 2,
                        gap=2 * line + 1)
      tags.append(((outer[0], outer[3] + 1), _class_name(class_names, c),
                   dict(fill=_WHITE, ink=_BLACK, outline=_rgb(colours[c]), above=False)))
  if pred is not None:
    boxes, classes, conf = pred
    order = np.argsort(conf, kind="stable") if conf is not None else range(len(boxes))
    for j in order:  # the most confident last, on top
      c = int(classes[j])
      x1, y1, x2, y2 = (int(round(v * scale)) for v in boxes[j])
      draw.rectangle([x1, y1, max(x2 - 1, x1), max(y2 - 1, y1)], outline=_rgb(colours[c]),
                     width=line)
      text = _class_name(class_names, c)
      if conf is not None:
        text += f" {float(conf[j]):.2f}"
      tags.append(((x1, y1), text, dict(fill=_rgb(colours[c]), ink=_ink(colours[c]),
                                        above=True)))
  for anchor, text, style in tags:
    _tag(draw, anchor, text, label_font, bounds=bounds, **style)
  tile = np.asarray(tile)
  if masks is not None:
    mask = colours[np.clip(masks[i], 0, len(colours) - 1)]
    tile = np.concatenate([tile, _resize(mask, scale, smooth=False)], axis=0)
  return tile


def _grid(path, tiles, captions, scales, *, cell_w, columns, title, detections, ground_truth,
          scores, masks, preds, truths, class_names, colours) -> TileLayout:
  """Lays ``tiles`` out with their captions, a title and the legend; saves the PNG."""
  count = len(tiles)
  caption_font, legend_font, title_font = _font(13), _font(13), _font(17, bold=True)
  columns = min(int(columns), count)
  rows = -(-count // columns)
  tile_h = [len(tile) for tile in tiles]
  row_h = [max(tile_h[r * columns:(r + 1) * columns]) for r in range(rows)]  # own height
  width = columns * cell_w + (columns + 1) * _GAP
  title_h = _text_size(title_font, title)[1] + 2 * _GAP if title else _GAP
  caption_h = _text_size(caption_font, "Ag")[1] + 6
  # Legend: line styles, then the class colours (all classes up to 25, else those drawn).
  items = []
  if detections is not None:
    def solid(draw, x, y, iw, ih):
      draw.rectangle([x, y, x + iw - 1, y + ih - 1], outline=_GREY, width=2)
    items.append((26, "prediction: solid box, tag 'class score'" if scores else
                  "prediction: solid box, tag 'class'", solid))
  if ground_truth is not None:
    def dashed(draw, x, y, iw, ih):
      _dashed_rectangle(draw, [x, y, x + iw - 1, y + ih - 1], _GREY, width=2, dash=5, gap=3)
    items.append((26, "ground truth: dashed box, white tag 'class'", dashed))
  if masks is not None:
    items.append((0, "lower half of each tile: the class mask", None))
  drawn = set()
  for entries in (preds, truths):
    for _, classes, _ in entries:
      drawn.update(int(c) for c in classes)
  if masks is not None:
    for mask in masks:
      drawn.update(int(c) for c in np.unique(mask) if 0 < c < len(class_names))
  shown = list(range(1, len(class_names))) if len(class_names) <= 25 else sorted(drawn)
  if items and shown:
    items.append((0, "class colours:", None))
    items += [(14, _class_name(class_names, c), _swatch(colours[c])) for c in shown]
  placed, legend_h = _legend_items(items, legend_font, width)
  tops = title_h + np.cumsum([0] + [caption_h + h + _GAP for h in row_h])
  height = int(tops[-1]) + legend_h + (_GAP if items else 0)
  canvas = Image.new("RGB", (width, height), _WHITE)
  draw = ImageDraw.Draw(canvas)
  if title:
    draw.text((_GAP, _GAP), title, fill=_BLACK, font=title_font, anchor="la")
  origins = []
  for k, tile in enumerate(tiles):
    r, q = divmod(k, columns)
    x = _GAP + q * (cell_w + _GAP)
    y = int(tops[r])
    draw.text((x, y + 1), captions[k], fill=_BLACK, font=caption_font, anchor="la")
    canvas.paste(Image.fromarray(tile), (x, y + caption_h))
    origins.append((x, y + caption_h))
  _draw_legend(draw, placed, int(tops[-1]), legend_font)
  _save(canvas, path)
  return TileLayout((width, height), scales, origins)


def instance_class_map(masks: Any, classes: Any, shape: Sequence[int]) -> np.ndarray:
  """``[H, W]`` class ids painted from instance masks ``[k, H, W]`` (in order, so a later
  instance covers an earlier one; detections come by decreasing score, so the most
  confident is painted first and kept where it is alone); 0 elsewhere."""
  out = np.zeros(tuple(shape), np.int32)
  for m, c in zip(np.asarray(masks, bool), np.asarray(classes)):
    if c > 0:
      out[m & (out == 0)] = int(c)
  return out


def save_instance_masks(path: str | os.PathLike, images: Any, instances: Sequence[Mapping],
                        ground_truth: Sequence[Mapping], gt_masks: Any, *,
                        class_names: Sequence[str], title: str | None = None,
                        columns: int = 4) -> TileLayout:
  """Instance segmentation beside the ground truth, as one PNG: each image twice, the ground
  truth (dashed boxes over the true class mask) and then the detections (solid boxes with
  scores over their predicted masks, in class colours); see :func:`save_detections`.

  ``instances``: per image ``{"boxes", "scores", "classes", "masks" [k, H, W] bool}``;
  ``ground_truth``: per image ``{"boxes", "classes"}``; ``gt_masks``: ``[S, H, W]`` class ids.
  """
  images = _image_list(images)
  tiles, dets, gts, maps, captions = [], [], [], [], []
  empty = {"boxes": np.zeros((0, 4)), "scores": np.zeros(0), "classes": np.zeros(0, int)}
  for im, inst, gt, gm in zip(images, instances, ground_truth, list(np.asarray(gt_masks))):
    tiles += [im, im]
    dets += [empty, inst]
    gts += [gt, {"boxes": np.zeros((0, 4)), "classes": np.zeros(0, int)}]
    maps += [np.asarray(gm), instance_class_map(inst["masks"], inst["classes"], im.shape[:2])]
    i = len(captions) // 2
    captions += [f"image {i}: ground truth ({len(gt['classes'])})",
                 f"image {i}: predicted ({len(inst['classes'])})"]
  return save_detections(path, tiles, dets, ground_truth=gts, class_names=class_names,
                         masks=maps, columns=2 * max(1, int(columns) // 2), title=title,
                         captions=captions)


def save_scene_preview(path: str | os.PathLike, images: Any, boxes: Any = None,
                       classes: Any = None, *, scores: Any = None, masks: Any = None,
                       class_names: Sequence[str] | None = None, columns: int = 4,
                       min_tile: int = 320, title: str | None = None) -> TileLayout:
  """:func:`save_detections` for the padded arrays of :mod:`jaxvision.data.scenes`.

  Without ``scores`` the boxes are the scenes' ground truth (dashed); with ``scores`` they
  are predictions (solid, with their scores).

  Args:
    path: the PNG file.
    images: ``[S, H, W, 3]`` uint8 (or one ``[H, W, 3]`` image).
    boxes: ``[S, G, 4]`` ``xyxy`` boxes (rows with class ``<= 0`` are skipped) or None.
    classes: ``[S, G]`` class ids, needed with ``boxes``.
    scores: optional ``[S, G]`` scores: the boxes are then predictions.
    masks: optional ``[S, H, W]`` class masks, drawn under each image.
    class_names: names by class id; default the scenes' (background and the digits).
    columns, min_tile, title: as in :func:`save_detections`.

  Returns:
    The :class:`TileLayout`.
  """
  if class_names is None:
    from jaxvision.data.scenes import CLASS_NAMES  # pylint: disable=import-outside-toplevel
    class_names = CLASS_NAMES
  images = np.asarray(images)
  if images.ndim == 3 and images.shape[-1] == 3:
    images = images[None]
    masks = None if masks is None else np.asarray(masks)[None]
  if images.ndim != 4 or images.shape[-1] != 3:
    raise ValueError(f"`images` must be [S, H, W, 3] or [H, W, 3], got {images.shape}.")
  count = len(images)
  entries = None
  if boxes is not None:
    if classes is None:
      raise ValueError("`classes` is required with `boxes`.")
    boxes = np.asarray(boxes).reshape(count, -1, 4)
    classes = np.asarray(classes).reshape(count, -1)
    entries = [{"boxes": boxes[i], "classes": classes[i]} for i in range(count)]
    if scores is not None:
      scores = np.asarray(scores).reshape(count, -1)
      for i, entry in enumerate(entries):
        entry["scores"] = scores[i]
  elif classes is not None or scores is not None:
    raise ValueError("`boxes` is required with `classes` or `scores`.")
  predicted = scores is not None
  return save_detections(path, images, entries if predicted else None,
                         ground_truth=None if predicted else entries, class_names=class_names,
                         scores=predicted, masks=masks, columns=columns, min_tile=min_tile,
                         title=title)


# ---------------------------------------------------------------------------------------------
# Segmentation.


def save_segmentation_triptychs(
    path: str | os.PathLike,
    images: Any,
    labels: Any,
    predictions: Any,
    *,
    class_names: Sequence[str],
    scale: int | None = None,
    title: str | None = None,
) -> TileLayout:
  """Writes rows of input / ground truth / prediction, one fixed colour per class, as a PNG.

  The colours are :func:`class_colours` (background black) and a legend under the rows names
  them; pixels whose id is not a class (e.g. an "ignore" value 255) are grey and get a legend
  entry of their own. Each prediction is captioned with its pixel accuracy. Without
  ``labels`` (new images) the rows are input / prediction.

  Args:
    path: the PNG file (its directory is created).
    images: ``[N, H, W, 3]`` uint8 (or float in ``[0, 1]``) images, or a list of ``[H, W, 3]``
      images of any sizes.
    labels: ``[N, H, W]`` (or a list of ``[H, W]``) ground-truth class ids, or None.
    predictions: ``[N, H, W]`` (or a list of ``[H, W]``) predicted class ids.
    class_names: names by class id; ``len(class_names)`` is the number of classes.
    scale: integer nearest-neighbour magnification; None picks for each image the smallest
      that makes it at least 200 pixels wide (images wider than 480 are reduced to 480).
    title: a line of text above the rows.

  Returns:
    The :class:`TileLayout`; ``origins`` holds the tiles of each row in turn.

  >>> import tempfile
  >>> masks = np.zeros((1, 8, 10), np.int32)
  >>> with tempfile.TemporaryDirectory() as d:
  ...   save_segmentation_triptychs(os.path.join(d, "t.png"), np.zeros((1, 8, 10, 3)), masks,
  ...                               masks, class_names=["bg", "cat"]).scales
  [20.0]
  """
  images = _image_list(images)
  predictions = _mask_list(predictions, images, "predictions")
  labels = None if labels is None else _mask_list(labels, images, "labels")
  class_names = [str(n) for n in class_names]
  num_classes = len(class_names)
  if num_classes == 0:
    raise ValueError("`class_names` must not be empty.")
  if scale is not None and (int(scale) != scale or int(scale) < 1):
    raise ValueError(f"`scale` must be a positive integer or None, got {scale}.")
  count = len(images)
  scales = [float(scale) if scale is not None else _fit_scale(im.shape[1], 200, 480)
            for im in images]
  colours = class_colours(num_classes)
  other = np.array([160, 160, 160], np.uint8)

  def paint(ids):
    valid = (ids >= 0) & (ids < num_classes)
    return np.where(valid[..., None], colours[np.where(valid, ids, 0)], other)

  head_font, caption_font, legend_font = _font(15, bold=True), _font(13), _font(13)
  title_font = _font(17, bold=True)
  tw = max(round(im.shape[1] * s) for im, s in zip(images, scales))
  heights = [round(im.shape[0] * s) for im, s in zip(images, scales)]  # each row its own
  heads = ("input",) + (("ground truth",) if labels is not None else ()) + ("prediction",)
  cols = len(heads)
  title_h = _text_size(title_font, title)[1] + 2 * _GAP if title else _GAP
  head_h = _text_size(head_font, "Ag")[1] + 6
  caption_h = _text_size(caption_font, "Ag")[1] + 4
  width = cols * tw + (cols + 1) * _GAP
  present = set()
  for mask in (labels or []) + predictions:
    present.update(np.unique(mask).tolist())
  items = [(0, "class colours:", None)]
  items += [(14, name, _swatch(colours[c])) for c, name in enumerate(class_names)]
  if any(not 0 <= c < num_classes for c in present):
    items.append((14, "not a class (e.g. ignore)", _swatch(other)))
  placed, legend_h = _legend_items(items, legend_font, width)
  tops = title_h + head_h + np.cumsum([0] + [caption_h + h + _GAP for h in heights])
  height = int(tops[-1]) + legend_h + _GAP
  canvas = Image.new("RGB", (width, height), _WHITE)
  draw = ImageDraw.Draw(canvas)
  if title:
    draw.text((_GAP, _GAP), title, fill=_BLACK, font=title_font, anchor="la")
  for col, head in enumerate(heads):
    draw.text((_GAP + col * (tw + _GAP), title_h), head, fill=_BLACK, font=head_font,
              anchor="la")
  origins = []
  for row in range(count):
    top = int(tops[row])
    tiles = [_resize(images[row], scales[row])]
    captions = [f"image {row}"]
    if labels is not None:
      tiles.append(_resize(paint(labels[row]), scales[row], smooth=False))
      accuracy = float(np.mean(labels[row] == predictions[row]))
      captions += ["", f"pixel accuracy {100 * accuracy:.1f}%"]
    else:
      captions.append("")
    tiles.append(_resize(paint(predictions[row]), scales[row], smooth=False))
    for col, (tile, caption) in enumerate(zip(tiles, captions)):
      x = _GAP + col * (tw + _GAP)
      draw.text((x, top), caption, fill=_GREY, font=caption_font, anchor="la")
      canvas.paste(Image.fromarray(tile.astype(np.uint8)), (x, top + caption_h))
      origins.append((x, top + caption_h))
  _draw_legend(draw, placed, int(tops[-1]), legend_font)
  _save(canvas, path)
  return TileLayout((width, height), scales, origins)


# ---------------------------------------------------------------------------------------------
# Confusion matrices.


def hungarian_order(cm: Any) -> np.ndarray:
  """Column order that puts the best one-to-one (row, column) matching on the diagonal.

  The matching maximises the matched counts (Kuhn-Munkres,
  ``scipy.optimize.linear_sum_assignment``), as :func:`jaxvision.metrics.hungarian_accuracy`.
  Matched columns come first, in the order of their rows (so with ``R <= K`` entry ``i`` is
  the column matched with row ``i``); columns left unmatched follow in index order.

  Args:
    cm: ``[R, K]`` counts, rows the true classes, columns the clusters.

  Returns:
    ``[K]`` int64 permutation of the column indices.

  >>> hungarian_order([[0, 9, 1], [8, 0, 2]]).tolist()
  [1, 0, 2]
  """
  return _hungarian(_check_matrix(cm))[0]


def _hungarian(cm: np.ndarray) -> tuple[np.ndarray, dict[int, int]]:
  """The column order of :func:`hungarian_order` and ``{column: matched row}``."""
  from scipy import optimize  # pylint: disable=import-outside-toplevel
  rows, cols = optimize.linear_sum_assignment(cm, maximize=True)
  matched = [int(k) for k in cols[np.argsort(rows)]]
  rest = [k for k in range(cm.shape[1]) if k not in set(matched)]
  return np.array(matched + rest, np.int64), {int(k): int(i) for i, k in zip(rows, cols)}


def _check_matrix(cm: Any) -> np.ndarray:
  cm = np.asarray(cm)
  if cm.ndim != 2 or cm.shape[0] == 0 or cm.shape[1] == 0:
    raise ValueError(f"`cm` must have shape [R, K] with R, K > 0, got shape {cm.shape}.")
  if not (np.issubdtype(cm.dtype, np.number) and np.all(np.isfinite(cm)) and cm.min() >= 0):
    raise ValueError("`cm` must hold finite, non-negative numbers.")
  return cm


def save_confusion_matrix(
    cm: Any,
    path: str | os.PathLike,
    *,
    title: str | None = None,
    class_names: Sequence[str] | None = None,
    column_order: Sequence[int] | Literal["hungarian"] | None = None,
    column_labels: Sequence[str] | None = None,
    xlabel: str | None = None,
    ylabel: str = "true class",
) -> np.ndarray:
  """Writes a confusion (or contingency) matrix as a PNG heat map with the counts printed.

  For clusters (IIC), ``column_order="hungarian"`` reorders the columns by
  :func:`hungarian_order` so the matched cells form the diagonal (outlined), and labels each
  column with its matched class and its cluster index, e.g. ``"7\\n(c3)"``.

  Args:
    cm: ``[R, K]`` non-negative counts, rows the true classes and columns the predictions
      or clusters (e.g. :func:`jaxvision.metrics.clustering.contingency_matrix`).
    path: the PNG file to write (its directory is created).
    title: the figure title, if any.
    class_names: ``R`` row names; also used for the columns when ``K == R`` and no
      ``column_labels`` or Hungarian order is given. Indices otherwise.
    column_order: None (as given), ``"hungarian"``, or a permutation of ``range(K)``: the
      column shown at position ``p`` is ``cm[:, column_order[p]]``.
    column_labels: ``K`` names by *original* column index (they move with their columns);
      the default is the class names (``K == R``), the matched class with the cluster index
      (Hungarian order), or the column index.
    xlabel: the x-axis label; default "predicted class", or "cluster (matched class)" with
      the Hungarian order.
    ylabel: the y-axis label.

  Returns:
    The ``[R, K]`` matrix as plotted (columns reordered).

  >>> import tempfile
  >>> with tempfile.TemporaryDirectory() as d:
  ...   save_confusion_matrix([[1, 5], [4, 0]], os.path.join(d, "cm.png"),
  ...                         column_order="hungarian").tolist()
  [[5, 1], [0, 4]]
  """
  # pylint: disable=import-outside-toplevel
  from matplotlib.backends.backend_agg import FigureCanvasAgg
  from matplotlib.figure import Figure
  from matplotlib.patches import Rectangle

  cm = _check_matrix(cm)
  rows, cols = cm.shape
  if class_names is not None:
    class_names = [str(name) for name in class_names]
    if len(class_names) != rows:
      raise ValueError(f"`class_names` must have {rows} names (one per row), got "
                       f"{len(class_names)}.")
  row_names = class_names or [str(i) for i in range(rows)]
  hungarian = isinstance(column_order, str)
  if hungarian:
    if column_order != "hungarian":
      raise ValueError(f"`column_order` must be 'hungarian', a permutation or None, got "
                       f"{column_order!r}.")
    order, match = _hungarian(cm)
  elif column_order is None:
    order = np.arange(cols)
  else:
    order = np.asarray(column_order)
    if order.shape != (cols,) or sorted(order.tolist()) != list(range(cols)):
      raise ValueError(f"`column_order` must be a permutation of range({cols}), got "
                       f"{order.tolist()}.")
  if column_labels is not None:
    column_labels = [str(name) for name in column_labels]
    if len(column_labels) != cols:
      raise ValueError(f"`column_labels` must have {cols} names (one per column), got "
                       f"{len(column_labels)}.")
  elif hungarian:
    column_labels = [f"{row_names[match[k]] if k in match else '-'}\n(c{k})"
                     for k in range(cols)]
  else:
    column_labels = class_names if class_names and cols == rows else [str(k)
                                                                       for k in range(cols)]
  shown = cm[:, order]
  col_names = [column_labels[k] for k in order]

  size = float(np.clip(0.5 * max(rows, cols) + 2.5, 4.5, 16.0))
  fig = Figure(figsize=(size + 1.0, size))
  FigureCanvasAgg(fig)
  ax = fig.add_subplot()
  image = ax.imshow(shown, cmap="Blues", interpolation="nearest", aspect="auto")
  fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04, label="count")
  ax.set_xlabel(xlabel or ("cluster, Hungarian order: matched class (cN = cluster index N)"
                           if hungarian else "predicted class"))
  ax.set_ylabel(ylabel)
  ax.set_xticks(range(cols), col_names, rotation=90 if cols > 12 and not hungarian else 0)
  ax.set_yticks(range(rows), row_names)
  if title:
    ax.set_title(title)
  if hungarian:  # outline the matched cells (the diagonal when R <= K)
    for p, k in enumerate(order):
      if int(k) in match:
        ax.add_patch(Rectangle((p - 0.5, match[int(k)] - 0.5), 1, 1, fill=False,
                               edgecolor="darkorange", linewidth=1.5))
  if rows * cols <= 400:  # print the counts while they stay legible
    threshold = shown.max() / 2.0
    integral = np.issubdtype(shown.dtype, np.integer) or np.all(shown == np.round(shown))
    for i in range(rows):
      for k in range(cols):
        text = f"{int(shown[i, k])}" if integral else f"{shown[i, k]:.2g}"
        ax.text(k, i, text, ha="center", va="center", fontsize=8,
                color="white" if shown[i, k] > threshold else "black")
  fig.tight_layout()
  os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
  fig.savefig(os.fspath(path), format="png", dpi=100)
  return shown


# ---------------------------------------------------------------------------------------------
# Line plots.

_LINESTYLES = ("-", "--", ":", "-.")
_MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*")


def save_line_plot(
    path: str | os.PathLike,
    series: Mapping[str | tuple[str, str], tuple[Sequence[float], Sequence[float]]],
    *,
    xlabel: str,
    ylabel: str,
    title: str | None = None,
    log_x: bool = False,
    log_y: bool = False,
    note: str | None = None,
) -> bool:
  """Writes one line per series as a PNG, or nothing when no series has two points.

  A key may be a ``(group, setting)`` pair, e.g. ``("torchvision", "nms iou=0.5")``: a
  group keeps one colour and a setting one line style and marker, so two settings of one
  implementation are never joined into one line. A series with a single point is drawn as a
  marker alone and marked "(one point)" in the legend.

  Args:
    path: the PNG file (its directory is created).
    series: label (or ``(group, setting)``) -> ``(xs, ys)``; the xs of one series must be
      distinct (two ys at one x mean two settings were merged).
    xlabel, ylabel: axis labels.
    title: the figure title.
    log_x, log_y: logarithmic axes (the values must then be positive).
    note: a line of text under the plot (e.g. the run's mode or machine).

  Returns:
    True when the file was written; False (no file) when no series has two or more points:
    a plot of single points says nothing a table does not.

  >>> import tempfile
  >>> with tempfile.TemporaryDirectory() as d:
  ...   save_line_plot(os.path.join(d, "p.png"), {("a", "x"): ([1, 2], [3, 4])},
  ...                  xlabel="N", ylabel="s")
  True
  """
  # pylint: disable=import-outside-toplevel
  from matplotlib.backends.backend_agg import FigureCanvasAgg
  from matplotlib.figure import Figure

  if not isinstance(series, Mapping) or not series:
    raise ValueError("`series` must be a non-empty mapping of label -> (xs, ys).")
  clean = {}
  for key, value in series.items():
    try:
      xs, ys = value
    except (TypeError, ValueError):
      raise ValueError(f"`series[{key!r}]` must be a pair (xs, ys).") from None
    xs, ys = np.asarray(xs, np.float64).ravel(), np.asarray(ys, np.float64).ravel()
    if len(xs) != len(ys) or len(xs) == 0:
      raise ValueError(f"`series[{key!r}]` needs as many xs as ys (at least one), got "
                       f"{len(xs)} and {len(ys)}.")
    if len(np.unique(xs)) != len(xs):
      raise ValueError(f"`series[{key!r}]` has several points at one x ({xs.tolist()}): key "
                       "the series by every setting that changes the result.")
    if not (np.all(np.isfinite(xs)) and np.all(np.isfinite(ys))):
      raise ValueError(f"`series[{key!r}]` must be finite.")
    if (log_x and xs.min() <= 0) or (log_y and ys.min() <= 0):
      raise ValueError(f"`series[{key!r}]` must be positive on a logarithmic axis.")
    order = np.argsort(xs)
    clean[key] = (xs[order], ys[order])
  if max(len(xs) for xs, _ in clean.values()) < 2:
    return False

  groups = list(dict.fromkeys(k[0] if isinstance(k, tuple) else k for k in clean))
  settings = list(dict.fromkeys(k[1] for k in clean if isinstance(k, tuple)))
  fig = Figure(figsize=(9.0, 5.0))
  FigureCanvasAgg(fig)
  ax = fig.add_subplot()
  for key in sorted(clean, key=lambda k: (str(k[1]) if isinstance(k, tuple) else "", str(k))):
    xs, ys = clean[key]
    group = key[0] if isinstance(key, tuple) else key
    setting = key[1] if isinstance(key, tuple) else None
    s = settings.index(setting) if setting is not None else 0
    label = f"{group}: {setting}" if setting is not None else str(group)
    if len(xs) == 1:
      label += " (one point)"
    colour = f"C{groups.index(group) % 10}"  # matplotlib's tab10 cycle
    ax.plot(xs, ys, linestyle=_LINESTYLES[s % len(_LINESTYLES)] if len(xs) > 1 else "none",
            marker=_MARKERS[s % len(_MARKERS)], color=colour, label=label)
  if log_x:
    ax.set_xscale("log")
  if log_y:
    ax.set_yscale("log")
  ax.set_xlabel(xlabel)
  ax.set_ylabel(ylabel)
  if title:
    ax.set_title(title)
  ax.grid(True, which="both", alpha=0.3)
  ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0.0)
  if note:
    fig.text(0.01, 0.01, note, fontsize=8, color="0.3", ha="left", va="bottom")
  fig.tight_layout(rect=(0, 0.04 if note else 0, 1, 1))
  os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
  fig.savefig(os.fspath(path), format="png", dpi=110)
  return True


def save_image_grid(path: str | os.PathLike, images: Any, *, title: str,
                    row_labels: Sequence[str] | None = None,
                    col_labels: Sequence[str] | None = None, note: str | None = None,
                    cell_inches: float = 0.8) -> None:
  """Writes ``images [R, C, H, W(, 1 or 3)]`` (uint8, or floats in ``[0, 1]``) as an R x C
  grid PNG with a title, optional row labels (left) and column labels (top).

  >>> import tempfile
  >>> with tempfile.TemporaryDirectory() as d:
  ...   save_image_grid(os.path.join(d, "g.png"), np.zeros((2, 3, 8, 8)), title="t",
  ...                   row_labels=["a", "b"], col_labels=["x", "y", "z"])
  """
  # pylint: disable=import-outside-toplevel
  from matplotlib.backends.backend_agg import FigureCanvasAgg
  from matplotlib.figure import Figure

  arr = np.asarray(images)
  if arr.ndim == 5 and arr.shape[-1] == 1:
    arr = arr[..., 0]
  if arr.ndim not in (4, 5) or (arr.ndim == 5 and arr.shape[-1] != 3):
    raise ValueError(f"`images` must be [R, C, H, W], [R, C, H, W, 1] or [R, C, H, W, 3], got "
                     f"shape {np.asarray(images).shape}.")
  rows, cols = arr.shape[:2]
  if rows == 0 or cols == 0:
    raise ValueError("`images` must hold at least one image.")
  for labels, n, name in ((row_labels, rows, "row_labels"), (col_labels, cols, "col_labels")):
    if labels is not None and len(labels) != n:
      raise ValueError(f"`{name}` has {len(labels)} labels for {n} {name[:3]}s.")
  arr = _to_uint8(arr, "images")
  left = 1.2 if row_labels is not None else 0.1
  top = 0.55 + (0.3 if col_labels is not None else 0.0)
  fig = Figure(figsize=(left + cols * cell_inches + 0.1,
                        top + rows * cell_inches + (0.3 if note else 0.1)))
  FigureCanvasAgg(fig)
  fig.suptitle(title, fontsize=10)
  w_total, h_total = fig.get_size_inches()
  for r in range(rows):
    for c in range(cols):
      ax = fig.add_axes(((left + c * cell_inches) / w_total,
                         1 - (top + (r + 1) * cell_inches) / h_total,
                         cell_inches * 0.95 / w_total, cell_inches * 0.95 / h_total))
      ax.imshow(arr[r, c], cmap="gray" if arr.ndim == 4 else None, vmin=0, vmax=255,
                interpolation="nearest")
      ax.set_xticks([])
      ax.set_yticks([])
      if r == 0 and col_labels is not None:
        ax.set_title(str(col_labels[c]), fontsize=7)
      if c == 0 and row_labels is not None:
        ax.set_ylabel(str(row_labels[r]), fontsize=7, rotation=0, ha="right", va="center")
  if note:
    fig.text(0.01, 0.01, note, fontsize=7, color="0.3", ha="left", va="bottom")
  os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
  fig.savefig(os.fspath(path), format="png", dpi=100)
