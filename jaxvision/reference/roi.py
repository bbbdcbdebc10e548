"""NumPy oracles for ROI Align, ROI Pool and the FPN level mapper: plain loops over samples.

The slow, obviously-correct versions of ``jaxvision.ops.roi``, written from torchvision's
documented CPU semantics (``torchvision/csrc/ops/cpu/roi_align_kernel.cpp`` and
``roi_pool_kernel.cpp``): for every ROI, every output bin and every sample, compute the
bilinear interpolation with the border rules below and average. They import NumPy only and
compute in float64, so they share no code with what they check.

Conventions (the same contract as the ops):

* ``features`` is ``[B, H, W, C]`` (NHWC); ``rois`` is ``[K, 5]``: ``(batch_index, x1, y1,
  x2, y2)`` in input-image coordinates, multiplied by ``spatial_scale`` to reach the map.
* The result is ``[K, out_h, out_w, C]``.

ROI Align, one ROI:

* ``offset = 0.5`` when ``aligned`` else ``0``; ``start = x1 * scale - offset``, ``end =
  x2 * scale - offset`` (same for y); ``size = end - start``, clamped to ``>= 1`` only when
  not ``aligned``.
* ``bin = size / out``; the grid per bin and axis is ``sampling_ratio`` if ``> 0``, else
  ``ceil(size / out)`` (which is ``<= 0``, so no sample and a zero output, for an aligned
  box of size ``<= 0``).
* Sample ``i`` of bin ``p``: ``start + p * bin + (i + 0.5) * bin / grid``.
* A sample at ``y < -1`` or ``y > H`` (or ``x < -1``, ``x > W``) contributes 0; otherwise it
  is clamped to ``>= 0``, and one at or past the last row (``floor(y) >= H - 1``) reads the
  last row only; the rest interpolate between ``floor(y)`` and ``floor(y) + 1``.
* The bin's value is the sum of its samples divided by ``max(grid_h * grid_w, 1)``.

ROI Pool, one ROI: corners ``round(x1 * scale)`` (half away from zero, C's ``round``) etc.;
size ``max(end - start + 1, 1)``; bin ``p`` covers rows ``[floor(p * bin), ceil((p + 1) *
bin))`` shifted by the start and clipped to ``[0, H]``; an empty bin gives 0 (argmax -1),
otherwise the first largest value in row-major order that is ``> -FLT_MAX`` (argmax its
``y * W + x``), or ``-FLT_MAX`` with argmax -1 when there is none (a bin of NaN / -inf).
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["roi_align", "roi_pool", "fpn_levels", "multiscale_roi_align"]

FLT_MAX = float(np.finfo(np.float32).max)


def _pair(v) -> tuple[int, int]:
  return (int(v), int(v)) if np.ndim(v) == 0 else (int(v[0]), int(v[1]))


def _bilinear(plane: np.ndarray, y: float, x: float) -> np.ndarray:
  """``plane`` ``[H, W, C]`` at ``(y, x)`` with torchvision's border rules."""
  height, width = plane.shape[:2]
  if y < -1.0 or y > height or x < -1.0 or x > width:
    return np.zeros(plane.shape[2:], np.float64)
  y, x = max(y, 0.0), max(x, 0.0)
  y_low, x_low = int(math.floor(y)), int(math.floor(x))
  if y_low >= height - 1:
    y_low = y_high = height - 1
    y = float(y_low)
  else:
    y_high = y_low + 1
  if x_low >= width - 1:
    x_low = x_high = width - 1
    x = float(x_low)
  else:
    x_high = x_low + 1
  ly, lx = y - y_low, x - x_low
  hy, hx = 1.0 - ly, 1.0 - lx
  return (hy * hx * plane[y_low, x_low] + hy * lx * plane[y_low, x_high]
          + ly * hx * plane[y_high, x_low] + ly * lx * plane[y_high, x_high])


def roi_align(features, rois, *, output_size, spatial_scale=1.0, sampling_ratio=-1,
              aligned=False) -> np.ndarray:
  """``[K, out_h, out_w, C]`` ROI Align of ``features`` ``[B, H, W, C]`` at ``rois`` ``[K, 5]``.

  >>> f = np.arange(25.0).reshape(1, 5, 5, 1)
  >>> roi_align(f, np.array([[0, 1, 1, 3, 3]]), output_size=4)[0, 0, :, 0].tolist()
  [7.5, 8.0, 8.5, 9.0]
  """
  features = np.asarray(features, np.float64)
  rois = np.asarray(rois, np.float64)
  out_h, out_w = _pair(output_size)
  out = np.zeros((len(rois), out_h, out_w, features.shape[-1]), np.float64)
  offset = 0.5 if aligned else 0.0
  for k, (b, x1, y1, x2, y2) in enumerate(rois):
    b = int(b)
    if not 0 <= b < len(features):
      continue  # the contract's defined result for a batch index out of range: zeros
    plane = features[b]
    start_x, start_y = x1 * spatial_scale - offset, y1 * spatial_scale - offset
    width = x2 * spatial_scale - offset - start_x
    height = y2 * spatial_scale - offset - start_y
    if not aligned:
      width, height = max(width, 1.0), max(height, 1.0)
    bin_h, bin_w = height / out_h, width / out_w
    grid_h = sampling_ratio if sampling_ratio > 0 else math.ceil(height / out_h)
    grid_w = sampling_ratio if sampling_ratio > 0 else math.ceil(width / out_w)
    count = max(grid_h * grid_w, 1)
    for ph in range(out_h):
      for pw in range(out_w):
        total = np.zeros(features.shape[-1], np.float64)
        for iy in range(grid_h):
          y = start_y + ph * bin_h + (iy + 0.5) * bin_h / grid_h
          for ix in range(grid_w):
            x = start_x + pw * bin_w + (ix + 0.5) * bin_w / grid_w
            total += _bilinear(plane, y, x)
        out[k, ph, pw] = total / count
  return out


def _c_round(v: float) -> int:
  """C's ``round``: half away from zero."""
  return int(math.floor(abs(v) + 0.5)) * (1 if v >= 0 else -1)


def roi_pool(features, rois, *, output_size, spatial_scale=1.0) -> tuple[np.ndarray, np.ndarray]:
  """``(pooled, argmax)``, both ``[K, out_h, out_w, C]``: torchvision's ROI max pooling.

  ``argmax`` is ``y * W + x`` in the ROI's image, or -1 for a bin without a maximum.

  >>> f = np.arange(16.0).reshape(1, 4, 4, 1)
  >>> p, a = roi_pool(f, np.array([[0, 0, 0, 3, 3]]), output_size=2)
  >>> p[0, :, :, 0].tolist(), a[0, :, :, 0].tolist()
  ([[5.0, 7.0], [13.0, 15.0]], [[5, 7], [13, 15]])
  """
  features = np.asarray(features, np.float64)
  rois = np.asarray(rois, np.float64)
  out_h, out_w = _pair(output_size)
  _, height, width, channels = features.shape
  pooled = np.zeros((len(rois), out_h, out_w, channels), np.float64)
  argmax = np.full((len(rois), out_h, out_w, channels), -1, np.int64)
  for k, (b, x1, y1, x2, y2) in enumerate(rois):
    b = int(b)
    if not 0 <= b < len(features):
      continue
    sx, sy = _c_round(x1 * spatial_scale), _c_round(y1 * spatial_scale)
    ex, ey = _c_round(x2 * spatial_scale), _c_round(y2 * spatial_scale)
    bin_h = max(ey - sy + 1, 1) / out_h
    bin_w = max(ex - sx + 1, 1) / out_w
    for ph in range(out_h):
      h0 = min(max(math.floor(ph * bin_h) + sy, 0), height)
      h1 = min(max(math.ceil((ph + 1) * bin_h) + sy, 0), height)
      for pw in range(out_w):
        w0 = min(max(math.floor(pw * bin_w) + sx, 0), width)
        w1 = min(max(math.ceil((pw + 1) * bin_w) + sx, 0), width)
        if h1 <= h0 or w1 <= w0:
          continue  # empty bin: 0, argmax -1
        for c in range(channels):
          best, where = -FLT_MAX, -1
          for h in range(h0, h1):
            for w in range(w0, w1):
              v = features[b, h, w, c]
              if v > best:  # strict: the first maximum wins; NaN never does
                best, where = v, h * width + w
          pooled[k, ph, pw, c], argmax[k, ph, pw, c] = best, where
  return pooled, argmax


def fpn_levels(rois, *, k_min, k_max, canonical_scale=224, canonical_level=4,
               eps=1e-6) -> np.ndarray:
  """The FPN level index (0 for ``k_min``) of each ROI: Lin et al. 2017, eq. 1.

  ``floor(k0 + log2(sqrt(area) / s0) + eps)`` clamped to ``[k_min, k_max]``, minus ``k_min``
  (torchvision's ``LevelMapper``); a box of area ``<= 0`` (empty or inverted) goes to
  ``k_min``.

  >>> fpn_levels(np.array([[0, 0, 0, 224, 224], [0, 0, 0, 32, 32]]), k_min=2, k_max=5).tolist()
  [2, 0]
  """
  rois = np.asarray(rois, np.float64)
  out = []
  for _, x1, y1, x2, y2 in rois:
    area = (x2 - x1) * (y2 - y1)
    if area <= 0:
      out.append(0)
      continue
    level = math.floor(canonical_level + math.log2(math.sqrt(area) / canonical_scale) + eps)
    out.append(min(max(level, k_min), k_max) - k_min)
  return np.array(out, np.int64)


def multiscale_roi_align(features, rois, *, output_size, spatial_scales, sampling_ratio=-1,
                         canonical_scale=224, canonical_level=4, aligned=False) -> np.ndarray:
  """ROI Align of each ROI on the FPN level its size maps to (torchvision's MultiScaleRoIAlign)."""
  k_min = int(round(-math.log2(spatial_scales[0])))
  k_max = int(round(-math.log2(spatial_scales[-1])))
  levels = fpn_levels(rois, k_min=k_min, k_max=k_max, canonical_scale=canonical_scale,
                      canonical_level=canonical_level)
  out = None
  for level, (feat, scale) in enumerate(zip(features, spatial_scales)):
    pooled = roi_align(feat, rois, output_size=output_size, spatial_scale=scale,
                       sampling_ratio=sampling_ratio, aligned=aligned)
    if out is None:
      out = np.zeros_like(pooled)
    out[levels == level] = pooled[levels == level]
  return out
