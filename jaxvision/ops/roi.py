"""ROI Align, ROI Pool and multi-scale (FPN) ROI Align, with torchvision's semantics, on NHWC.

JAX has no ROI Align, ROI Pool or crop-and-resize of its own (jax-ml/jax#16021). These ops
compute exactly what torchvision's CPU kernels compute (``torchvision.ops.roi_align``,
``roi_pool``, ``MultiScaleRoIAlign``), checked against the NumPy loops in
``jaxvision.reference.roi`` and, in ``tests/reference/test_roi_vs_torchvision.py``, against
torchvision itself.

Boxes come in two layouts:

* ``[K, 5]`` rows ``(batch_index, x1, y1, x2, y2)`` (torchvision's ``rois``), or a list of
  ``[L_i, 4]`` arrays, one per image (concatenated, image ``i`` as the batch index): the
  result is ``[K, out_h, out_w, C]``. The batch index is truncated to an integer as
  torchvision does; a row whose index is outside ``[0, B)`` gives zeros (torchvision reads
  out of bounds).
* ``[B, K, 4]`` padded per image (``x1, y1, x2, y2``): the result is ``[B, K, out_h, out_w,
  C]``. Padding rows are ordinary boxes; mask their outputs yourself.

Coordinates are in the input image's pixels; ``spatial_scale`` (e.g. 1/16) maps them to the
feature map. A box with a NaN coordinate gives zeros.

ROI Align (He et al. 2017), torchvision's rules exactly:

* ``aligned=True`` shifts the box by -0.5 map pixel (pixel centres at integer coordinates),
  and does not clamp its size: a box of size ``<= 0`` gives zeros with the adaptive grid.
  ``aligned=False`` (torchvision's default, the original Mask R-CNN) clamps each side to
  ``>= 1`` map pixel.
* Each of the ``out_h x out_w`` bins averages a grid of ``sampling_ratio`` samples per axis,
  or, for ``sampling_ratio <= 0``, ``ceil(roi_size / output_size)`` samples per axis chosen
  per ROI (torchvision's adaptive grid, ``-1``; a port with a fixed grid differs, apache/mxnet
  #11077).
* A sample at ``y < -1``, ``y > H``, ``x < -1`` or ``x > W`` contributes zero; the others are
  clamped to ``>= 0`` and one at or past the last row or column reads that row or column; the
  sum is divided by the number of samples (zeros included).

How it runs, with static shapes whatever the grid: bilinear interpolation is separable, and
so is an average over a grid of samples, so each ROI's output is ``Wy @ F @ Wx^T`` where
``Wy[p, h]`` is the average over bin ``p``'s samples of their interpolation weight on row
``h`` (``[K, out_h, H]``; likewise ``Wx``). For the adaptive grid the number of samples per
bin is data dependent, but a row ``h`` is reached only by samples in an interval of length 2
(``[h - 1, h + 1)``, ``[-1, 1)`` for the first row, ``(H - 2, H]`` for the last), and samples
are more than half a pixel apart whenever a bin has more than one, so at most 6 candidate
samples per ``(bin, row)`` are evaluated, their weights exactly. The gradient with respect
to ``features`` is the transposed matmuls: deterministic (no scatter, no atomics; compare
pytorch/vision #1058, #7579) and bit-identical across runs. Boxes receive the gradient of the
interpolation weights (torchvision gives boxes none); stop it if you do not want it.

Cost: ``K * out_h * H * W * C`` multiply-adds for the first matmul (a dense GEMM, whatever
the boxes' sizes), memory ``K * out_h * W * C`` for its result. With several images and
``[K, 5]`` boxes, the first matmul runs over ``B * H`` rows; the padded ``[B, K, 4]`` layout
avoids that factor.

ROI Pool (Girshick 2015), torchvision's rules: corners rounded half away from zero after
scaling, size ``max(end - start + 1, 1)``, bin ``p`` covers ``[floor(p * bin), ceil((p + 1) *
bin))`` shifted by the start and clipped to the map; an empty bin gives 0. The maximum is the
first in row-major order, NaN never wins, and a bin holding only NaN / ``-inf`` /
``-FLT_MAX`` gives ``-FLT_MAX`` (torchvision's initial value). Each bin's maximum and its
position come from a 2-D sparse table (range-maximum queries: four overlapping power-of-two
blocks per bin), and the output is the feature gathered at that position, so the gradient
goes to that one position, as torchvision's does, ties included (``jnp.max`` would split it
between tied values).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from jax.typing import ArrayLike

from jaxvision import _checks

__all__ = ["roi_align", "roi_pool", "multiscale_roi_align", "fpn_levels"]

FLT_MAX = float(np.finfo(np.float32).max)
_CANDIDATES = 6  # adaptive grid: samples evaluated per (bin, row); see the module docstring
_MAX_GRID = float(2**24)  # samples per bin beyond this are not representable in float32


# ---------------------------------------------------------------------------------------------
# Arguments.


def _check_output_size(value: Any) -> tuple[int, int]:
  def is_int(v):
    return isinstance(v, (int, np.integer)) and not isinstance(v, (bool, np.bool_))
  pair = (value, value) if is_int(value) else value
  if not isinstance(pair, (tuple, list)) or len(pair) != 2 or not all(map(is_int, pair)):
    raise TypeError(f"`output_size` must be a positive int or a pair of them, got {value!r}.")
  if min(pair) <= 0:
    raise ValueError(f"`output_size` must be > 0, got {value!r}.")
  return int(pair[0]), int(pair[1])


def _check_features(features: Any) -> tuple[Any, np.dtype]:
  features = _checks.array(features)
  if len(features.shape) != 4:
    raise ValueError(f"`features` must have shape [B, H, W, C] (NHWC), got shape "
                     f"{tuple(features.shape)}.")
  if min(features.shape[:3]) == 0:
    raise ValueError(f"`features` must have B, H, W >= 1, got shape {tuple(features.shape)}.")
  return features, _checks.compute_dtype(features, "features", allow_int=True)


def _check_scale(spatial_scale: Any) -> float:
  if isinstance(spatial_scale, (bool, np.bool_)) or not isinstance(
      spatial_scale, (int, float, np.integer, np.floating)):
    raise TypeError(f"`spatial_scale` must be a Python number, got {spatial_scale!r}.")
  if not math.isfinite(spatial_scale) or spatial_scale <= 0:
    raise ValueError(f"`spatial_scale` must be finite and > 0, got {spatial_scale!r}.")
  return float(spatial_scale)


def _check_boxes(boxes: Any, batch: int, dtype) -> tuple[jax.Array, bool]:
  """``(rois, padded)``: ``[K, 5]`` rows, or ``[B, K, 4]`` when ``padded``."""
  if isinstance(boxes, (list, tuple)):
    parts = []
    for i, b in enumerate(boxes):
      b = _checks.array(b)
      if len(b.shape) != 2 or b.shape[-1] != 4:
        raise ValueError(f"`boxes[{i}]` must have shape [L, 4], got shape {tuple(b.shape)}.")
      parts.append(jnp.concatenate(
          [jnp.full((b.shape[0], 1), i, dtype), jnp.asarray(b, dtype)], axis=1))
    if not parts:
      raise ValueError("`boxes` is an empty list: give one [L, 4] array per image.")
    return jnp.concatenate(parts, axis=0), False
  boxes = _checks.array(boxes)
  _checks.compute_dtype(boxes, "boxes", allow_int=True)
  if len(boxes.shape) == 2 and boxes.shape[-1] == 5:
    return jnp.asarray(boxes, dtype), False
  if len(boxes.shape) == 3 and boxes.shape[-1] == 4:
    if boxes.shape[0] != batch:
      raise ValueError(f"`boxes` [B, K, 4] must have the batch size of `features` ({batch}), "
                       f"got shape {tuple(boxes.shape)}.")
    return jnp.asarray(boxes, dtype), True
  raise ValueError(f"`boxes` must be [K, 5] (batch index, x1, y1, x2, y2), [B, K, 4] or a "
                   f"list of [L, 4], got shape {tuple(boxes.shape)}.")


def _check_sampling_ratio(sampling_ratio: Any) -> int:
  return _checks.check_int(sampling_ratio, "sampling_ratio")


# ---------------------------------------------------------------------------------------------
# ROI Align.


def _tent(y: jax.Array, row: jax.Array, length: int) -> jax.Array:
  """The weight of a sample at ``y`` on ``row`` with torchvision's border rules."""
  valid = (y >= -1.0) & (y <= length)
  yc = jnp.maximum(y, 0.0)
  low = jnp.floor(yc)
  at_end = low >= length - 1
  low = jnp.where(at_end, length - 1, low)
  yc = jnp.where(at_end, low, yc)
  high = jnp.where(at_end, low, low + 1)
  frac = yc - low
  w = (1.0 - frac) * (low == row) + frac * (high == row)
  return jnp.where(valid, w, 0.0)


def _axis_weights(start: jax.Array, size: jax.Array, out: int, length: int,
                  sampling_ratio: int) -> jax.Array:
  """``[..., out, length]``: the average interpolation weight of each bin's samples per row.

  ``start``, ``size``: ``[...]`` the ROI's start and size along the axis, in map pixels.
  """
  dtype = start.dtype
  bin_size = size / out
  if sampling_ratio > 0:
    grid = jnp.full_like(size, float(sampling_ratio))
  else:
    # ceil(size / out) exactly: XLA turns the division by a constant into a multiplication
    # by its reciprocal (21 / 7 -> 3.0000002), which would add a sample; correct by one.
    grid = jnp.ceil(size / out)
    grid = jnp.where((grid - 1) * out >= size, grid - 1, grid)
    grid = jnp.where(grid * out < size, grid + 1, grid)
    grid = jnp.clip(grid, -1.0, _MAX_GRID)  # NaN stays NaN: no sample
  safe_grid = jnp.where(grid >= 1, grid, 1.0)
  base = start[..., None] + jnp.arange(out, dtype=dtype) * bin_size[..., None]  # [..., out]
  rows = jnp.arange(length, dtype=dtype)
  if sampling_ratio > 0:
    index = jnp.arange(sampling_ratio, dtype=dtype)  # every sample, for every row
    index = jnp.broadcast_to(index, base.shape + (1, sampling_ratio))
  else:
    # The first sample that can reach row r lies at or after lo(r); take 6 from just before.
    lo = jnp.where(rows == 0, -1.0, rows - 1.0)
    step = (bin_size / safe_grid)[..., None, None]
    t = (lo - base[..., None]) / jnp.where(step > 0, step, 1.0) - 0.5
    t = jnp.clip(jnp.nan_to_num(t, nan=0.0), -1.0, safe_grid[..., None, None])
    index = jnp.maximum(jnp.floor(t), 0.0)[..., None] + jnp.arange(_CANDIDATES, dtype=dtype)
  in_grid = index < grid[..., None, None, None]
  # torchvision's expression, in its order: start + p * bin + (i + .5) * bin / grid.
  y = base[..., None, None] + (index + 0.5) * bin_size[..., None, None, None] / safe_grid[
      ..., None, None, None]
  w = jnp.where(in_grid, _tent(y, rows[:, None], length), 0.0)
  return w.sum(-1) / safe_grid[..., None, None]


def _align_weights(rois: jax.Array, out_hw, hw, scale, sampling_ratio, aligned):
  offset = 0.5 if aligned else 0.0
  x1, y1, x2, y2 = (rois[..., i] * scale - offset for i in range(4))
  width, height = x2 - x1, y2 - y1
  if not aligned:
    width, height = jnp.maximum(width, 1.0), jnp.maximum(height, 1.0)
  wy = _axis_weights(y1, height, out_hw[0], hw[0], sampling_ratio)
  wx = _axis_weights(x1, width, out_hw[1], hw[1], sampling_ratio)
  return wy, wx


_HIGHEST = lax.Precision.HIGHEST  # no TF32 on GPUs: these are interpolations, not features


def roi_align(
    features: ArrayLike,
    boxes: ArrayLike | Sequence[ArrayLike],
    *,
    output_size: int | tuple[int, int],
    spatial_scale: float = 1.0,
    sampling_ratio: int = -1,
    aligned: bool = False,
) -> jax.Array:
  """ROI Align (Mask R-CNN): bilinear crops of ``features`` at ``boxes``, torchvision's rules.

  Args:
    features: ``[B, H, W, C]`` feature maps (NHWC); float (integers are promoted to float32).
    boxes: ``[K, 5]`` rows ``(batch_index, x1, y1, x2, y2)``, a list of ``[L_i, 4]`` per
      image, or ``[B, K, 4]`` padded per image; input-image pixel coordinates.
    output_size: ``(out_h, out_w)`` or an int.
    spatial_scale: map pixels per input pixel (1/16 for a stride-16 map).
    sampling_ratio: samples per bin and axis; ``<= 0`` for torchvision's adaptive
      ``ceil(roi_size / output_size)``.
    aligned: shift boxes by -0.5 map pixel (pixel-centre convention, Detectron2's
      ``ROIAlignV2``); see the module docstring for what else changes.

  Returns:
    ``[K, out_h, out_w, C]`` (``[B, K, out_h, out_w, C]`` for padded boxes), in the dtype of
    ``features`` (float32 for integer features).

  >>> f = jnp.arange(25.0).reshape(1, 5, 5, 1)
  >>> roi_align(f, jnp.array([[0., 1, 1, 3, 3]]), output_size=4)[0, 0, :, 0].tolist()
  [7.5, 8.0, 8.5, 9.0]
  >>> roi_align(f, jnp.array([[0., 1, 1, 3, 3]]), output_size=4, aligned=True)[0, 0, :, 0].tolist()
  [4.5, 5.0, 5.5, 6.0]
  """
  features, dtype = _check_features(features)
  out_hw = _check_output_size(output_size)
  scale = _check_scale(spatial_scale)
  sampling_ratio = _check_sampling_ratio(sampling_ratio)
  if not isinstance(aligned, (bool, np.bool_)):
    raise TypeError(f"`aligned` must be a bool, got {aligned!r}.")
  batch, height, width, _ = features.shape
  rois, padded = _check_boxes(boxes, batch, dtype)
  out_dtype = features.dtype if jnp.issubdtype(features.dtype, jnp.floating) else dtype
  return _roi_align(features.astype(dtype), rois, out_hw, scale, sampling_ratio, bool(aligned),
                    padded).astype(out_dtype)


# Jitted with the configuration static: eagerly, the weight construction dispatches and
# compiles dozens of small ops one by one (measured 1.4-3.4 s per call on tiny inputs against
# 0.24 s for the compiled program); under an outer jit this is inlined.
@functools.partial(jax.jit, static_argnames=("out_hw", "scale", "sampling_ratio", "aligned",
                                             "padded"))
def _roi_align(features, rois, out_hw, scale, sampling_ratio, aligned, padded):
  batch, height, width, _ = features.shape
  if padded:
    wy, wx = _align_weights(rois, out_hw, (height, width), scale, sampling_ratio, aligned)
    t = jnp.einsum("bkph,bhwc->bkpwc", wy, features, precision=_HIGHEST)
    return jnp.einsum("bkpwc,bkqw->bkpqc", t, wx, precision=_HIGHEST)
  wy, wx = _align_weights(rois[:, 1:], out_hw, (height, width), scale, sampling_ratio, aligned)
  index = rois[:, 0]
  # A NaN or out-of-range batch index selects no image: zeros.
  image = jnp.where(jnp.isfinite(index), jnp.trunc(index), -1.0).astype(jnp.int32)
  if batch == 1:
    wy = jnp.where((image == 0)[:, None, None], wy, 0.0)
    t = jnp.einsum("kph,hwc->kpwc", wy, features[0], precision=_HIGHEST)
  else:
    onehot = (image[:, None] == jnp.arange(batch)).astype(wy.dtype)
    wyb = (wy[:, :, None, :] * onehot[:, None, :, None]).reshape(
        wy.shape[0], wy.shape[1], batch * height)
    t = jnp.einsum("kph,hwc->kpwc", wyb, features.reshape(batch * height, width, -1),
                   precision=_HIGHEST)
  return jnp.einsum("kpwc,kqw->kpqc", t, wx, precision=_HIGHEST)


# ---------------------------------------------------------------------------------------------
# ROI Pool.


def _c_round(x: jax.Array) -> jax.Array:
  """C's ``round``: half away from zero (``jnp.round`` rounds half to even)."""
  return jnp.sign(x) * jnp.floor(jnp.abs(x) + 0.5)


def _better(va, ia, vb, ib):
  """``(value, index)`` of the winner: the larger value, the lower index on ties."""
  take_a = (va > vb) | ((va == vb) & (ia < ib))
  return jnp.where(take_a, va, vb), jnp.where(take_a, ia, ib)


def _shift(x: jax.Array, by: int, axis: int, fill) -> jax.Array:
  """``x`` moved ``by`` positions towards 0 along ``axis``, the tail filled with ``fill``."""
  if by == 0:
    return x
  pad = [(0, 0)] * x.ndim
  pad[axis] = (0, by)
  return lax.slice_in_dim(jnp.pad(x, pad, constant_values=fill), by, by + x.shape[axis],
                          axis=axis)


def _sparse_table(values: jax.Array, index: jax.Array):
  """``[LH, LW, B, H, W, C]`` maxima (and their indices) of the blocks ``2^i x 2^j`` at (h, w)."""
  _, height, width, _ = values.shape
  levels_h = height.bit_length()
  levels_w = width.bit_length()
  big = jnp.iinfo(jnp.int32).max
  rows_v, rows_i = [], []
  v, i = values, index
  for jh in range(levels_h):
    if jh:
      by = 1 << (jh - 1)
      v, i = _better(v, i, _shift(v, by, 1, -jnp.inf), _shift(i, by, 1, big))
    cols_v, cols_i = [v], [i]
    cv, ci = v, i
    for jw in range(1, levels_w):
      by = 1 << (jw - 1)
      cv, ci = _better(cv, ci, _shift(cv, by, 2, -jnp.inf), _shift(ci, by, 2, big))
      cols_v.append(cv)
      cols_i.append(ci)
    rows_v.append(jnp.stack(cols_v))
    rows_i.append(jnp.stack(cols_i))
  return jnp.stack(rows_v), jnp.stack(rows_i)


def _floor_log2(n: jax.Array) -> jax.Array:
  """``floor(log2(n))`` for int32 ``n >= 1``, exactly (no float rounding)."""
  return 31 - lax.clz(n.astype(jnp.int32))


def roi_pool(
    features: ArrayLike,
    boxes: ArrayLike | Sequence[ArrayLike],
    *,
    output_size: int | tuple[int, int],
    spatial_scale: float = 1.0,
) -> jax.Array:
  """ROI max pooling (Fast R-CNN), torchvision's rounding and empty-bin rules.

  Args: as :func:`roi_align` (no sampling grid, no ``aligned``).

  Returns:
    ``[K, out_h, out_w, C]`` (``[B, K, out_h, out_w, C]`` for padded boxes): each bin's
    maximum; 0 for a bin that lies outside the map; ``-FLT_MAX`` for a bin holding no value
    above it. The gradient goes to the first maximum in row-major order (torchvision's
    argmax).

  >>> f = jnp.arange(16.0).reshape(1, 4, 4, 1)
  >>> roi_pool(f, jnp.array([[0., 0, 0, 3, 3]]), output_size=2)[0, :, :, 0].tolist()
  [[5.0, 7.0], [13.0, 15.0]]
  """
  features, dtype = _check_features(features)
  out_hw = _check_output_size(output_size)
  scale = _check_scale(spatial_scale)
  batch, height, width, channels = features.shape
  rois, padded = _check_boxes(boxes, batch, dtype)
  out_dtype = features.dtype if jnp.issubdtype(features.dtype, jnp.floating) else dtype
  features = features.astype(dtype)
  if padded:
    k = rois.shape[1]
    image = jnp.repeat(jnp.arange(batch, dtype=jnp.int32), k)
    coords = rois.reshape(batch * k, 4)
  else:
    index = rois[:, 0]
    image = jnp.where(jnp.isfinite(index), jnp.trunc(index), -1.0).astype(jnp.int32)
    coords = rois[:, 1:]
  out = _roi_pool(features, image, coords, out_hw, scale)
  if padded:
    out = out.reshape(batch, k, *out_hw, channels)
  return out.astype(out_dtype)


def _bin_edges(start, end, out, length):
  """``[K, out]`` first and one-past-last rows of each bin, clipped to ``[0, length]``.

  In integers: ``floor(p * size / out)`` and ``ceil((p + 1) * size / out)`` exactly (the
  float product of torchvision rounds to the same integers; XLA may reassociate a float one).
  """
  size = jnp.maximum(end - start + 1, 1)
  p = jnp.arange(out, dtype=jnp.int32)
  lo = (p * size[:, None]) // out + start[:, None]
  hi = -((-(p + 1) * size[:, None]) // out) + start[:, None]
  return jnp.clip(lo, 0, length), jnp.clip(hi, 0, length)


@functools.partial(jax.jit, static_argnames=("out_hw", "scale"))
def _roi_pool(features, image, coords, out_hw, scale):
  batch, height, width, channels = features.shape
  out_h, out_w = out_hw
  finite = jnp.isfinite(coords).all(-1) & (image >= 0) & (image < batch)
  coords = jnp.where(finite[:, None], coords, 0.0)
  # Corners as int32 (clipped far outside any map, where they give the same empty bins).
  x1, y1, x2, y2 = (jnp.clip(_c_round(coords[:, i] * scale), -2**20, 2**20).astype(jnp.int32)
                    for i in range(4))
  h0, h1 = _bin_edges(y1, y2, out_h, height)
  w0, w1 = _bin_edges(x1, x2, out_w, width)
  empty = (h1[:, :, None] <= h0[:, :, None]) | (w1[:, None, :] <= w0[:, None, :])  # [K,oh,ow]

  # Candidates: NaN and anything <= -FLT_MAX never win (torchvision's strict > from -FLT_MAX).
  plane = jnp.arange(height * width, dtype=jnp.int32).reshape(1, height, width, 1)
  flat = plane + (jnp.arange(batch, dtype=jnp.int32) * (height * width)).reshape(batch, 1, 1, 1)
  flat = jnp.broadcast_to(flat, features.shape)
  keys = lax.stop_gradient(features)
  keys = jnp.where(jnp.isnan(keys) | (keys <= -FLT_MAX), -jnp.inf, keys)
  table_v, table_i = _sparse_table(keys, flat)
  levels_w = table_v.shape[1]
  table_v = table_v.reshape(-1, channels)
  table_i = table_i.reshape(-1, channels)

  span_h = jnp.maximum(h1 - h0, 1)
  span_w = jnp.maximum(w1 - w0, 1)
  jh, jw = _floor_log2(span_h), _floor_log2(span_w)  # [K, oh], [K, ow]
  rows = (h0, jnp.maximum(h1 - (1 << jh), h0))
  cols = (w0, jnp.maximum(w1 - (1 << jw), w0))
  img = jnp.clip(image, 0, batch - 1)[:, None, None]
  best_v = best_i = None
  for r in rows:
    for c in cols:
      at = ((((jh[:, :, None] * levels_w + jw[:, None, :]) * batch + img) * height
             + r[:, :, None]) * width + c[:, None, :])
      v, i = table_v[at], table_i[at]  # [K, oh, ow, C]
      best_v, best_i = (v, i) if best_v is None else _better(best_v, best_i, v, i)
  found = jnp.isfinite(best_v)  # -inf: nothing above -FLT_MAX in the bin
  gathered = features.reshape(-1, channels)
  out = _gather_channels(gathered, jnp.where(found, best_i, 0))
  out = jnp.where(found, out, -FLT_MAX)
  keep = (~empty & finite[:, None, None])[..., None]
  return jnp.where(keep, out, 0.0)


def _gather_channels(flat_features: jax.Array, index: jax.Array) -> jax.Array:
  """``out[..., c] = flat_features[index[..., c], c]``."""
  channels = flat_features.shape[-1]
  return flat_features.reshape(-1)[index * channels + jnp.arange(channels, dtype=jnp.int32)]


# ---------------------------------------------------------------------------------------------
# Multi-scale (FPN) ROI Align.


def fpn_levels(
    boxes: ArrayLike,
    *,
    k_min: int,
    k_max: int,
    canonical_scale: float = 224.0,
    canonical_level: int = 4,
    eps: float = 1e-6,
) -> jax.Array:
  """The FPN level of each box, as an index from ``k_min`` (Lin et al. 2017, eq. 1).

  ``floor(canonical_level + log2(sqrt(area) / canonical_scale) + eps)`` clamped to
  ``[k_min, k_max]``, minus ``k_min``: torchvision's ``LevelMapper``. A box of area ``<= 0``
  (empty, inverted or NaN) goes to ``k_min`` (torchvision casts the NaN of its square root).

  Args:
    boxes: ``[..., 4]`` ``(x1, y1, x2, y2)`` in input pixels.

  Returns: int32 ``[...]`` in ``[0, k_max - k_min]``.
  """
  boxes = _checks.array(boxes)
  _checks.check_last_dim(boxes, "boxes", 4)
  k_min = _checks.check_int(k_min, "k_min")
  k_max = _checks.check_int(k_max, "k_max", minimum=k_min)
  boxes = jnp.asarray(boxes, _checks.compute_dtype(boxes, "boxes", allow_int=True))
  area = (boxes[..., 2] - boxes[..., 0]) * (boxes[..., 3] - boxes[..., 1])
  ok = area > 0
  s = jnp.sqrt(jnp.where(ok, area, 1.0))
  level = jnp.floor(canonical_level + jnp.log2(s / canonical_scale) + eps)
  level = jnp.where(ok, jnp.clip(level, k_min, k_max), k_min)
  return (level - k_min).astype(jnp.int32)


def _infer_scale(feature_hw, image_hw) -> float:
  scales = [2.0 ** round(math.log2(f / i)) for f, i in zip(feature_hw, image_hw)]
  if scales[0] != scales[1]:
    raise ValueError(f"a feature map of size {tuple(feature_hw)} is not a power-of-two "
                     f"reduction of `image_size` {tuple(image_hw)} on both axes.")
  return scales[0]


def multiscale_roi_align(
    features: Sequence[ArrayLike],
    boxes: ArrayLike | Sequence[ArrayLike],
    *,
    output_size: int | tuple[int, int],
    image_size: tuple[int, int] | None = None,
    spatial_scales: Sequence[float] | None = None,
    sampling_ratio: int = -1,
    canonical_scale: float = 224.0,
    canonical_level: int = 4,
    aligned: bool = False,
) -> jax.Array:
  """ROI Align of each box on the FPN level its size maps to (torchvision's MultiScaleRoIAlign).

  Args:
    features: the pyramid, finest first: ``[B, H_l, W_l, C]`` maps with strides ``2^k`` for
      consecutive ``k``.
    boxes: as :func:`roi_align`.
    output_size, sampling_ratio, aligned: as :func:`roi_align` (torchvision's pooler uses
      ``aligned=False``).
    image_size: ``(H, W)`` of the input images; each level's scale is inferred as
      torchvision does (``2^round(log2(map / image))``). Or give ``spatial_scales``.
    spatial_scales: one scale per level (``1 / stride``), powers of two.
    canonical_scale, canonical_level: ``s0`` and ``k0`` of the level mapper (224, 4).

  Returns: as :func:`roi_align`. Every level is pooled for every box and the box's own level
  selected (static shapes under ``jit``): the cost is the sum over levels.
  """
  if isinstance(features, (jax.Array, np.ndarray)) or not isinstance(features, (list, tuple)):
    raise TypeError("`features` must be a list of [B, H, W, C] maps, finest first.")
  if not features:
    raise ValueError("`features` is empty: give at least one level.")
  maps = [_check_features(f)[0] for f in features]
  if (image_size is None) == (spatial_scales is None):
    raise ValueError("give exactly one of `image_size` and `spatial_scales`.")
  if spatial_scales is None:
    if len(image_size) != 2:
      raise ValueError(f"`image_size` must be (H, W), got {image_size!r}.")
    spatial_scales = [_infer_scale(m.shape[1:3], image_size) for m in maps]
  spatial_scales = [_check_scale(s) for s in spatial_scales]
  if len(spatial_scales) != len(maps):
    raise ValueError(f"`spatial_scales` has {len(spatial_scales)} entries for {len(maps)} "
                     f"levels.")
  ks = [-math.log2(s) for s in spatial_scales]
  if any(abs(k - round(k)) > 1e-6 for k in ks) or any(
      round(b) - round(a) != 1 for a, b in zip(ks, ks[1:])):
    raise ValueError(f"`spatial_scales` must be 1/2^k for consecutive k, finest first, got "
                     f"{spatial_scales}.")
  k_min, k_max = round(ks[0]), round(ks[-1])
  batch = maps[0].shape[0]
  dtype = _checks.compute_dtype(maps[0], "features", allow_int=True)
  rois, padded = _check_boxes(boxes, batch, dtype)
  levels = fpn_levels(rois if padded else rois[:, 1:], k_min=k_min, k_max=k_max,
                      canonical_scale=canonical_scale, canonical_level=canonical_level)
  out = None
  for level, (m, scale) in enumerate(zip(maps, spatial_scales)):
    pooled = roi_align(m, rois, output_size=output_size, spatial_scale=scale,
                       sampling_ratio=sampling_ratio, aligned=aligned)
    pick = (levels == level)[..., None, None, None]
    out = jnp.where(pick, pooled, 0.0 if out is None else out)
  return out.astype(pooled.dtype)
