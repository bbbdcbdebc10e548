"""Detection and segmentation scenes built from real MNIST digits, offline and deterministic.

The source book trains its SSD (ch. 11) and FCN (ch. 12) on photographs of drinks that cannot
be downloaded here. A scene is the offline stand-in: an RGB image holding 1-8 real MNIST
digits of varied size (so every pyramid level of a detector has objects of its scale),
colour and position, with bounded overlap, on a cluttered background (smooth colour texture,
pixel noise and stray pen strokes that are *not* objects). The ground truth is exact:

* ``boxes``: ``[G, 4]`` float32 ``xyxy`` pixel boxes, tight around the digit's ink
  (``x2``/``y2`` are exclusive edges), rows ``>= num_boxes`` zero;
* ``classes``: ``[G]`` int32 ``digit + 1`` (``0`` = background / padding), as the book's
  class ids start at 1;
* ``mask``: ``[H, W]`` uint8 per-pixel class (``digit + 1`` where the digit's ink covers at
  least half the pixel, ``0`` elsewhere; a later digit paints over an earlier one).

Scene ``i`` depends only on ``(seed, i)``, the digit pool and the options, never on how many
scenes are generated, so ``generate_scenes(..., num_scenes=100)`` is a prefix of
``num_scenes=500``. Train scenes use the MNIST training digits and test scenes the test
digits (:class:`SceneSource`), so no digit image is shared between the splits.

Records follow the project's detection convention ``{"image", "boxes", "classes",
"num_boxes", "mask"}`` and go straight into :func:`jaxvision.data.make_pipeline`.
"""

from __future__ import annotations

import colorsys
import os
from typing import Any, Sequence

import numpy as np
from PIL import Image, ImageDraw

from jaxvision.data.mnist import load_mnist
from jaxvision.data.pipeline import ArraySource
# The class colours of every picture; drawn by jaxvision.viz (save_scene_preview,
# save_detections), re-exported here for the data's users.
from jaxvision.viz import class_colours  # pylint: disable=unused-import

__all__ = ["SceneConfig", "generate_scene", "generate_scenes", "SceneSource",
           "class_colours", "CLASS_NAMES"]

# Class id -> name; id 0 is the background, ids 1..10 are the digits 0..9.
CLASS_NAMES = ("background",) + tuple(str(d) for d in range(10))

# The digit's ink: pixels of the resized 28x28 digit above this (0..1) count for the box.
_BOX_INK = 0.2
# ... and above this for the mask.
_MASK_INK = 0.5


STYLES = ("texture", "shapes")


class SceneConfig:
  """Options of the scene generator.

  Args:
    image_size: ``(H, W)`` of the scenes; the book's images are ``(480, 640)``.
    num_digits: ``(min, max)`` digits per scene, uniform; a digit that cannot be placed
      without too much overlap after ``placement_tries`` tries is dropped, so a crowded scene
      may hold fewer than drawn (never fewer than one); so is a digit too thin to keep a
      mask pixel at its drawn size (a box always holds mask pixels of its class).
    digit_size: ``(min, max)`` side of the resized 28x28 MNIST patch, as fractions of
      ``min(H, W)``, drawn log-uniformly (the ink box is about 0.7 of the patch in height).
    max_overlap: largest allowed intersection of two digits' boxes over the smaller box's
      area (so no digit is hidden behind another).
    clutter: draw the textured, noisy background with stray strokes; False gives a plain
      dark background (useful for debugging a model).
    style: the background generator with ``clutter``: ``"texture"`` (two octaves of smooth
      colour noise and 2-6 stray strokes) or ``"shapes"``, a second style for testing that a
      model generalises (a linear colour gradient, 3-8 filled or outlined rectangles and
      ellipses, 6-14 strokes and polylines, stronger pixel noise).
    max_boxes: ``G``, the padded number of box rows (``>= num_digits[1]``).
    placement_tries: position draws per digit before it is dropped.
  """

  def __init__(self, *, image_size: Sequence[int] = (240, 320),
               num_digits: Sequence[int] = (1, 8),
               digit_size: Sequence[float] = (0.12, 0.6),
               max_overlap: float = 0.15, clutter: bool = True,
               max_boxes: int | None = None, placement_tries: int = 30,
               style: str = "texture"):
    h, w = _pair_of_ints(image_size, "image_size", minimum=16)
    lo, hi = _pair_of_ints(num_digits, "num_digits", minimum=1)
    if lo > hi:
      raise ValueError(f"`num_digits` must be (min, max) with min <= max, got {num_digits!r}.")
    if len(digit_size) != 2 or not 0 < digit_size[0] <= digit_size[1] <= 1:
      raise ValueError(f"`digit_size` must be (min, max) fractions in (0, 1], got "
                       f"{digit_size!r}.")
    if not 0 <= max_overlap <= 1:
      raise ValueError(f"`max_overlap` must be in [0, 1], got {max_overlap!r}.")
    max_boxes = hi if max_boxes is None else int(max_boxes)
    if max_boxes < hi:
      raise ValueError(f"`max_boxes` ({max_boxes}) must be >= num_digits[1] ({hi}).")
    if int(placement_tries) < 1:
      raise ValueError(f"`placement_tries` must be >= 1, got {placement_tries!r}.")
    if style not in STYLES:
      raise ValueError(f"`style` must be one of {STYLES}, got {style!r}.")
    self.style = style
    self.image_size = (h, w)
    self.num_digits = (lo, hi)
    self.digit_size = (float(digit_size[0]), float(digit_size[1]))
    self.max_overlap = float(max_overlap)
    self.clutter = bool(clutter)
    self.max_boxes = max_boxes
    self.placement_tries = int(placement_tries)

  def __repr__(self) -> str:
    return (f"SceneConfig(image_size={self.image_size}, num_digits={self.num_digits}, "
            f"digit_size={self.digit_size}, max_overlap={self.max_overlap}, "
            f"clutter={self.clutter}, max_boxes={self.max_boxes}, style={self.style!r})")


def _pair_of_ints(value: Any, name: str, *, minimum: int) -> tuple[int, int]:
  try:
    a, b = value
  except (TypeError, ValueError):
    raise TypeError(f"`{name}` must be a pair of ints, got {value!r}.") from None
  for v in (a, b):
    if isinstance(v, bool) or not isinstance(v, (int, np.integer)):
      raise TypeError(f"`{name}` must be a pair of ints, got {value!r}.")
    if v < minimum:
      raise ValueError(f"`{name}` entries must be >= {minimum}, got {value!r}.")
  return int(a), int(b)


def _bright_colour(rng: np.random.Generator) -> np.ndarray:
  hue = rng.random()
  sat = rng.uniform(0.4, 1.0)
  val = rng.uniform(0.75, 1.0)
  return np.array(colorsys.hsv_to_rgb(hue, sat, val), np.float32)


def _shapes_background(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
  """The ``"shapes"`` style: gradient, rectangles and ellipses, strokes, strong noise."""
  a, b = rng.uniform(0.0, 0.45, (2, 3)).astype(np.float32)
  angle = rng.uniform(0, 2 * np.pi)
  ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
  t = (np.cos(angle) * xs / w + np.sin(angle) * ys / h)
  t = (t - t.min()) / max(float(t.max() - t.min()), 1e-6)
  canvas = Image.fromarray(np.clip((a + (b - a) * t[..., None]) * 255, 0, 255).astype(np.uint8))
  draw = ImageDraw.Draw(canvas)
  side = min(h, w)
  for _ in range(rng.integers(3, 9)):
    colour = tuple(int(c * 255 * rng.uniform(0.2, 0.6)) for c in _bright_colour(rng))
    x0, y0 = rng.uniform(-0.1 * w, w), rng.uniform(-0.1 * h, h)
    x1, y1 = x0 + rng.uniform(0.1, 0.5) * side, y0 + rng.uniform(0.1, 0.5) * side
    shape = draw.rectangle if rng.random() < 0.5 else draw.ellipse
    if rng.random() < 0.6:
      shape([x0, y0, x1, y1], fill=colour)
    else:
      shape([x0, y0, x1, y1], outline=colour, width=int(rng.integers(1, 3)))
  for _ in range(rng.integers(6, 15)):
    colour = tuple(int(c * 255 * rng.uniform(0.5, 0.95)) for c in _bright_colour(rng))
    width = int(rng.integers(1, max(2, side // 50) + 1))
    points = [(rng.uniform(0, w), rng.uniform(0, h))]
    for _ in range(rng.integers(1, 4)):
      step = rng.uniform(0.03, 0.15) * side
      angle = rng.uniform(0, 2 * np.pi)
      points.append((points[-1][0] + step * np.cos(angle), points[-1][1] + step * np.sin(angle)))
    draw.line(points, fill=colour, width=width)
  out = np.asarray(canvas, np.float32) / 255.0
  out = out + rng.normal(0.0, 0.07, out.shape).astype(np.float32)
  return np.clip(out, 0.0, 1.0)


def _background(rng: np.random.Generator, h: int, w: int, clutter: bool,
                style: str = "texture") -> np.ndarray:
  """``[H, W, 3]`` float32 in ``[0, 1]``: smooth colour texture, noise and stray strokes."""
  if not clutter:
    return np.full((h, w, 3), 0.1, np.float32)
  if style == "shapes":
    return _shapes_background(rng, h, w)
  # Two octaves of smooth colour texture, kept darker than the digits.
  texture = np.zeros((h, w, 3), np.float32)
  for cells, amp in ((3, 0.30), (12, 0.12)):
    coarse = rng.random((cells, max(2, cells * w // h), 3)).astype(np.float32)
    img = Image.fromarray((coarse * 255).astype(np.uint8)).resize((w, h), Image.BICUBIC)
    texture += amp * np.asarray(img, np.float32) / 255.0
  canvas = Image.fromarray(np.clip(texture * 255, 0, 255).astype(np.uint8))
  draw = ImageDraw.Draw(canvas)
  # Stray strokes: short lines and arcs in digit-like colours (distractors, not objects).
  side = min(h, w)
  for _ in range(rng.integers(2, 7)):
    colour = tuple(int(c * 255 * rng.uniform(0.5, 0.9)) for c in _bright_colour(rng))
    width = int(rng.integers(1, max(2, side // 60) + 1))
    x0, y0 = rng.uniform(0, w), rng.uniform(0, h)
    length = rng.uniform(0.05, 0.2) * side
    if rng.random() < 0.5:
      angle = rng.uniform(0, 2 * np.pi)
      draw.line([(x0, y0), (x0 + length * np.cos(angle), y0 + length * np.sin(angle))],
                fill=colour, width=width)
    else:
      start = rng.uniform(0, 360)
      draw.arc([x0, y0, x0 + length, y0 + length], start, start + rng.uniform(60, 200),
               fill=colour, width=width)
  out = np.asarray(canvas, np.float32) / 255.0
  out = out + rng.normal(0.0, 0.04, out.shape).astype(np.float32)
  return np.clip(out, 0.0, 1.0)


def _ink_box(alpha: np.ndarray) -> tuple[int, int, int, int] | None:
  """The digit's box, or None when it would have no mask pixel (blank, or a thin stroke
  such as a "1" shrunk to a few pixels: a box with nothing to segment inside)."""
  if not (alpha >= _MASK_INK).any():
    return None
  rows = np.flatnonzero((alpha > _BOX_INK).any(axis=1))
  cols = np.flatnonzero((alpha > _BOX_INK).any(axis=0))
  return int(cols[0]), int(rows[0]), int(cols[-1]) + 1, int(rows[-1]) + 1


def _overlap_ok(box, placed, max_overlap) -> bool:
  x1, y1, x2, y2 = box
  area = (x2 - x1) * (y2 - y1)
  for px1, py1, px2, py2 in placed:
    iw = min(x2, px2) - max(x1, px1)
    ih = min(y2, py2) - max(y1, py1)
    if iw > 0 and ih > 0:
      smaller = min(area, (px2 - px1) * (py2 - py1))
      if iw * ih > max_overlap * smaller:
        return False
  return True


def generate_scene(digits: np.ndarray, labels: np.ndarray, index: int, *,
                   config: SceneConfig | None = None, seed: int = 0) -> dict[str, np.ndarray]:
  """Scene number ``index`` of the stream seeded by ``seed``, from a pool of MNIST digits.

  Args:
    digits: ``[N, 28, 28]`` uint8 digit images (the pool to draw from).
    labels: ``[N]`` their digits ``0..9``.
    index: which scene (a non-negative int); with ``seed`` it fixes everything.
    config: a :class:`SceneConfig` (default: ``SceneConfig()``).
    seed: the stream's seed.

  Returns:
    ``{"image": uint8 [H, W, 3], "boxes": float32 [G, 4], "classes": int32 [G],
    "num_boxes": int32, "mask": uint8 [H, W]}`` (see the module docstring).
  """
  config = SceneConfig() if config is None else config
  # A draw places nothing only when every digit it picked is blank: redraw with another
  # seed (a bounded number of times, so a pool of blank images is an error, not a hang).
  for attempt in range(_MAX_REDRAWS):
    scene = _draw_scene(digits, labels, index, config, int(seed) + 7919 * attempt)
    if scene is not None:
      return scene
  raise ValueError(f"no digit could be placed in {_MAX_REDRAWS} draws of scene {index}: "
                   f"are the `digits` images blank?")


_MAX_REDRAWS = 20


def _draw_scene(digits, labels, index, config, seed):
  h, w = config.image_size
  rng = np.random.default_rng([int(seed), int(index), 0x5CE])
  image = _background(rng, h, w, config.clutter, getattr(config, "style", "texture"))
  mask = np.zeros((h, w), np.uint8)
  boxes = np.zeros((config.max_boxes, 4), np.float32)
  classes = np.zeros((config.max_boxes,), np.int32)
  side = min(h, w)
  lo, hi = (np.log(s * side) for s in config.digit_size)
  wanted = int(rng.integers(config.num_digits[0], config.num_digits[1] + 1))
  placed: list[tuple[int, int, int, int]] = []
  for _ in range(wanted):
    pick = int(rng.integers(len(digits)))
    size = max(8, int(round(np.exp(rng.uniform(lo, hi)))))
    size = min(size, h, w)
    patch = Image.fromarray(digits[pick]).resize((size, size), Image.BILINEAR)
    alpha = np.asarray(patch, np.float32) / 255.0
    ink = _ink_box(alpha)
    if ink is None:
      continue
    colour = _bright_colour(rng)
    for _ in range(config.placement_tries):
      top = int(rng.integers(0, h - size + 1))
      left = int(rng.integers(0, w - size + 1))
      box = (left + ink[0], top + ink[1], left + ink[2], top + ink[3])
      if _overlap_ok(box, placed, config.max_overlap):
        break
    else:
      continue
    region = image[top:top + size, left:left + size]
    region *= 1.0 - alpha[..., None]
    region += alpha[..., None] * colour
    mask[top:top + size, left:left + size][alpha >= _MASK_INK] = int(labels[pick]) + 1
    boxes[len(placed)] = box
    classes[len(placed)] = int(labels[pick]) + 1
    placed.append(box)
  if not placed:
    return None
  return {
      "image": np.clip(np.rint(image * 255), 0, 255).astype(np.uint8),
      "boxes": boxes,
      "classes": classes,
      "num_boxes": np.int32(len(placed)),
      "mask": mask,
  }


def generate_scenes(digits: np.ndarray, labels: np.ndarray, num_scenes: int, *,
                    config: SceneConfig | None = None, seed: int = 0,
                    start: int = 0) -> dict[str, np.ndarray]:
  """Scenes ``start .. start + num_scenes - 1`` of :func:`generate_scene`, stacked.

  Returns:
    ``{"image": [S, H, W, 3] uint8, "boxes": [S, G, 4], "classes": [S, G],
    "num_boxes": [S], "mask": [S, H, W] uint8}``.

  >>> rng = np.random.default_rng(0)
  >>> digits = (rng.random((5, 28, 28)) > 0.7).astype(np.uint8) * 255
  >>> s = generate_scenes(digits, np.arange(5), 3, config=SceneConfig(image_size=(64, 80)))
  >>> s["image"].shape, s["boxes"].shape, s["mask"].shape, bool((s["num_boxes"] >= 1).all())
  ((3, 64, 80, 3), (3, 8, 4), (3, 64, 80), True)
  """
  digits = np.asarray(digits)
  labels = np.asarray(labels)
  if digits.ndim != 3 or digits.dtype != np.uint8:
    raise ValueError(f"`digits` must be uint8 [N, 28, 28] images, got {digits.dtype} "
                     f"{digits.shape}.")
  if labels.shape != digits.shape[:1]:
    raise ValueError(f"`labels` must have shape {digits.shape[:1]}, got {labels.shape}.")
  if len(digits) == 0:
    raise ValueError("`digits` must hold at least one image.")
  if isinstance(num_scenes, bool) or not isinstance(num_scenes, (int, np.integer)) or (
      num_scenes < 1):
    raise ValueError(f"`num_scenes` must be a positive int, got {num_scenes!r}.")
  scenes = [generate_scene(digits, labels, start + i, config=config, seed=seed)
            for i in range(int(num_scenes))]
  return {k: np.stack([s[k] for s in scenes]) for k in scenes[0]}


class SceneSource(ArraySource):
  """A split of scenes as a grain random-access source (all scenes held in memory).

  Train scenes draw their digits from the MNIST training set and test scenes from the test
  set; the split also enters the seed, so the two streams differ even on the same pool.

  Args:
    split: ``"train"`` or ``"test"``.
    num_scenes: how many scenes.
    data_dir: the MNIST directory (see :func:`jaxvision.data.load_mnist`; ``None`` uses
      ``$JAXVISION_DATA_DIR`` or TFDS).
    config: a :class:`SceneConfig`.
    seed: the stream seed.
    digits: optional ``(images, labels)`` pool to use instead of loading MNIST.
  """

  def __init__(self, split: str = "train", num_scenes: int = 1000, *,
               data_dir: str | os.PathLike | None = None,
               config: SceneConfig | None = None, seed: int = 0,
               digits: tuple[np.ndarray, np.ndarray] | None = None):
    if split not in ("train", "test"):
      raise ValueError(f"`split` must be 'train' or 'test', got {split!r}.")
    if digits is None:
      digits = load_mnist(split, data_dir=data_dir)
    self.split = split
    self.config = SceneConfig() if config is None else config
    split_seed = int(seed) * 2 + (0 if split == "train" else 1)
    super().__init__(generate_scenes(digits[0], digits[1], num_scenes, config=self.config,
                                     seed=split_seed))
