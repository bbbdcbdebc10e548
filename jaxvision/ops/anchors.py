"""Anchor (default / prior) boxes: the source book's SSD anchors and d2l's ``multibox_prior``.

Anchors depend only on static shapes, so they are computed once on the host with NumPy (in
float64, then rounded to float32) and returned as a constant ``jax.Array``; calling these
functions inside ``jit`` costs nothing at run time. Both return ``xyxy`` boxes in the order
"pyramid level, then row-major over the feature map ``(y, x)``, then the anchors of one
point", so anchor ``k`` lines up with the ``k``-th prediction of a head that flattens its
``[h, w, anchors_per_point, ...]`` output.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np

__all__ = ["ssd_anchors", "multibox_prior"]


def ssd_anchors(
    image_shape: Sequence[int],
    feature_shapes: Sequence[Sequence[int]],
    *,
    sizes: Sequence[Sequence[float]] | None = None,
    aspect_ratios: Sequence[float] = (1, 2, 0.5),
) -> jax.Array:
  """SSD anchor boxes in pixels for a feature pyramid, as in the source book (ch. 11).

  Level ``i`` (of ``L``) has two sizes ``(s1, s2)``; by default ``s1 = s_i`` and
  ``s2 = sqrt(s_i s_{i+1})`` with ``s = linspace(0.2, 0.9, L + 1)``. At every point
  ``(y, x)`` of the level's ``h x w`` map, centred at ``((x + 0.5) W / w, (y + 0.5) H / h)``,
  there is one box per aspect ratio ``ar`` of size ``s1`` (width ``W s1 sqrt(ar)``, height
  ``H s1 / sqrt(ar)``) and then one box of size ``s2`` (width ``W s2``, height ``H s2``), so
  ``len(aspect_ratios) + 1`` anchors per point. Boxes are not clipped to the image.

  Args:
    image_shape: ``(H, W)`` or ``(H, W, C)`` of the input image (a channel entry is ignored).
    feature_shapes: the ``(h, w)`` (or ``(h, w, c)``) of each of the ``L`` pyramid levels.
    sizes: ``L`` pairs ``(s1, s2)`` of sizes as fractions of the image side, or None for
      the default above.
    aspect_ratios: the width / height ratios of the ``s1`` boxes.

  Returns:
    ``[A, 4]`` float32 ``xyxy`` anchors in pixels, ``A = sum_i h_i w_i (len(aspect_ratios)
    + 1)``: levels in order, each row-major over ``(y, x)``, then the point's anchors in the
    order ``[ratios at s1..., square at s2]``.

  >>> ssd_anchors((480, 640, 3), [(30, 40), (15, 20), (8, 10), (4, 5)]).shape  # the book's
  (6400, 4)
  >>> ssd_anchors((4, 4), [(2, 2)], sizes=[(0.5, 1.0)], aspect_ratios=(1, 4))[:3]
  Array([[ 0. ,  0. ,  2. ,  2. ],
         [-1. ,  0.5,  3. ,  1.5],
         [-1. , -1. ,  3. ,  3. ]], dtype=float32)
  """
  image = _shape_prefix(image_shape, "image_shape")
  levels = _levels(feature_shapes)
  ratios = _positive_numbers(aspect_ratios, "aspect_ratios")
  if sizes is None:
    s = np.linspace(0.2, 0.9, len(levels) + 1)
    pairs = tuple((float(s[i]), math.sqrt(s[i] * s[i + 1])) for i in range(len(levels)))
  else:
    pairs = _size_pairs(sizes, len(levels))
  return jnp.asarray(_ssd_anchors_np(image, levels, pairs, ratios))


def multibox_prior(
    feature_shape: Sequence[int],
    *,
    sizes: Sequence[float],
    ratios: Sequence[float],
) -> jax.Array:
  """d2l's ``multibox_prior``: ``n + m - 1`` normalized anchors centred on every pixel.

  With ``n`` sizes and ``m`` ratios, each pixel ``(y, x)`` of an ``h x w`` map gets the
  boxes ``(s_1, r_1), ..., (s_n, r_1)`` and then ``(s_1, r_2), ..., (s_1, r_m)`` (d2l's
  order), centred at ``((x + 0.5) / w, (y + 0.5) / h)`` with width ``s sqrt(r) h / w`` and
  height ``s / sqrt(r)`` in normalized coordinates (so ``r`` is the aspect ratio in pixels).
  Boxes are not clipped to ``[0, 1]``.

  Args:
    feature_shape: ``(h, w)`` of the map (d2l: the input image's height and width).
    sizes: the ``n`` sizes, fractions of the image height.
    ratios: the ``m`` width / height ratios.

  Returns:
    ``[h w (n + m - 1), 4]`` float32 ``xyxy`` anchors in ``[0, 1]`` image coordinates,
    row-major over the pixels and then in the order above.

  >>> multibox_prior((1, 2), sizes=(0.5,), ratios=(1, 4))
  Array([[0.125, 0.25 , 0.375, 0.75 ],
         [0.   , 0.375, 0.5  , 0.625],
         [0.625, 0.25 , 0.875, 0.75 ],
         [0.5  , 0.375, 1.   , 0.625]], dtype=float32)
  """
  shape = _shape_prefix(feature_shape, "feature_shape", allow_channels=False)
  sizes_t = _positive_numbers(sizes, "sizes")
  ratios_t = _positive_numbers(ratios, "ratios")
  return jnp.asarray(_multibox_prior_np(shape, sizes_t, ratios_t))


# ---------------------------------------------------------------------------------------------
# NumPy construction (cached: the arguments are normalized to hashable tuples first).


@functools.lru_cache(maxsize=32)
def _ssd_anchors_np(image, levels, pairs, ratios):
  height, width = image
  out = []
  for (h, w), (s1, s2) in zip(levels, pairs):
    sqrt_ar = np.sqrt(np.asarray(ratios, np.float64))
    box_w = np.concatenate([width * s1 * sqrt_ar, [width * s2]])  # [K]
    box_h = np.concatenate([height * s1 / sqrt_ar, [height * s2]])
    cx = (np.arange(w) + 0.5) * (width / w)
    cy = (np.arange(h) + 0.5) * (height / h)
    out.append(_grid_boxes(cx, cy, box_w, box_h))
  return _freeze(np.concatenate(out, axis=0))


@functools.lru_cache(maxsize=32)
def _multibox_prior_np(shape, sizes, ratios):
  h, w = shape
  s = np.asarray(sizes, np.float64)
  r = np.asarray(ratios, np.float64)
  # (all sizes, first ratio), then (first size, other ratios).
  box_w = np.concatenate([s * np.sqrt(r[0]), s[0] * np.sqrt(r[1:])]) * (h / w)
  box_h = np.concatenate([s / np.sqrt(r[0]), s[0] / np.sqrt(r[1:])])
  cx = (np.arange(w) + 0.5) / w
  cy = (np.arange(h) + 0.5) / h
  return _freeze(_grid_boxes(cx, cy, box_w, box_h))


def _grid_boxes(cx, cy, box_w, box_h):
  """``[h * w * K, 4]`` xyxy boxes: row-major over ``(cy, cx)``, then the ``K`` shapes."""
  cxs = cx[None, :, None]
  cys = cy[:, None, None]
  half_w = box_w[None, None, :] / 2
  half_h = box_h[None, None, :] / 2
  shape = (len(cy), len(cx), len(box_w))
  boxes = np.stack([np.broadcast_to(cxs - half_w, shape), np.broadcast_to(cys - half_h, shape),
                    np.broadcast_to(cxs + half_w, shape), np.broadcast_to(cys + half_h, shape)],
                   axis=-1)
  return boxes.reshape(-1, 4)


def _freeze(arr):
  arr = arr.astype(np.float32)
  arr.flags.writeable = False
  return arr


# ---------------------------------------------------------------------------------------------
# Argument checks (static Python values).


def _positive_int(value, name):
  if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value <= 0:
    raise ValueError(f"`{name}` must contain positive ints, got {value!r}.")
  return int(value)


def _shape_prefix(shape, name, *, allow_channels=True):
  """``(h, w)`` from ``(h, w)`` or (when ``allow_channels``) ``(h, w, c)``."""
  try:
    dims = tuple(shape)
  except TypeError:
    raise ValueError(f"`{name}` must be a sequence like (h, w), got {shape!r}.") from None
  allowed = (2, 3) if allow_channels else (2,)
  if len(dims) not in allowed:
    want = "(h, w) or (h, w, c)" if allow_channels else "(h, w)"
    raise ValueError(f"`{name}` must be {want}, got {shape!r}.")
  return tuple(_positive_int(d, name) for d in dims[:2])


def _levels(feature_shapes):
  try:
    shapes = tuple(feature_shapes)
  except TypeError:
    raise ValueError(
        f"`feature_shapes` must be a sequence of (h, w), got {feature_shapes!r}.") from None
  if not shapes:
    raise ValueError("`feature_shapes` must contain at least one (h, w) level.")
  return tuple(_shape_prefix(s, "feature_shapes") for s in shapes)


def _positive_numbers(values, name):
  try:
    out = tuple(float(v) for v in values)
  except (TypeError, ValueError):
    raise ValueError(f"`{name}` must be a sequence of positive numbers, got {values!r}.") from None
  if not out or not all(v > 0 and math.isfinite(v) for v in out):
    raise ValueError(f"`{name}` must be a non-empty sequence of positive numbers, got {values!r}.")
  return out


def _size_pairs(sizes, num_levels):
  try:
    pairs = tuple(tuple(p) for p in sizes)
  except TypeError:
    raise ValueError(f"`sizes` must be a sequence of (s1, s2) pairs, got {sizes!r}.") from None
  if len(pairs) != num_levels or any(len(p) != 2 for p in pairs):
    raise ValueError(
        f"`sizes` must hold one (s1, s2) pair per level ({num_levels}), got {sizes!r}.")
  return tuple(_positive_numbers(p, "sizes") for p in pairs)
