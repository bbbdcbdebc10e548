"""NumPy oracles for max pooling with argmax and max unpooling: plain loops over pixels.

The slow, obviously-correct versions of ``jaxvision.ops.pooling``: for every output pixel,
walk its window in row-major order and keep the first largest value; for unpooling, add
every value at its index. They import NumPy only, so they share no code with what they check.

Conventions (the same contract as the ops):

* ``x`` is ``[..., H, W, C]`` (NHWC, zero or more leading batch dimensions).
* ``argmax`` is the index ``y * W + x`` into the ``H x W`` plane of the same image and
  channel of the unpadded input (int64 here).
* Ties go to the first maximum in row-major window order (the lowest index); NaN is larger
  than every number (the first NaN wins).
* ``"VALID"``: ``Ho = (H - k) // s + 1``. ``"SAME"``: ``Ho = ceil(H / s)``, with
  ``max((Ho - 1) s + k - H, 0)`` padded rows, the smaller half on top; padded positions are
  skipped (they never win).
* ``max_unpool`` adds values that land on the same position and drops indices outside
  ``[0, H * W)``.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["max_pool_with_argmax", "max_unpool"]


def _pair(v) -> tuple[int, int]:
  return (int(v), int(v)) if np.ndim(v) == 0 else (int(v[0]), int(v[1]))


def _out_size(size: int, k: int, s: int, padding: str) -> tuple[int, int]:
  """Number of outputs and the padding before the first row (or column)."""
  if padding == "VALID":
    if size < k:
      raise ValueError(f"window {k} larger than the input {size} with VALID padding.")
    return (size - k) // s + 1, 0
  if padding == "SAME":
    out = math.ceil(size / s)
    return out, max((out - 1) * s + k - size, 0) // 2
  raise ValueError(f"unknown padding {padding!r}.")


def _greater(v, best) -> bool:
  """``v > best`` with NaN above everything (and a NaN never beaten)."""
  if best is None:
    return True
  if math.isnan(best):
    return False
  return math.isnan(v) or v > best


def max_pool_with_argmax(x, *, window=2, strides=None, padding="VALID"):
  """``(pooled, argmax)`` of ``[..., H, W, C]`` by looping over every window.

  >>> pooled, argmax = max_pool_with_argmax(np.array([[[1.], [5.]], [[5.], [0.]]]))
  >>> pooled.ravel().tolist(), argmax.ravel().tolist()
  ([5.0], [1])
  """
  x = np.asarray(x)
  kh, kw = _pair(window)
  sh, sw = _pair(window if strides is None else strides)
  h, w, c = x.shape[-3:]
  ho, top = _out_size(h, kh, sh, padding)
  wo, left = _out_size(w, kw, sw, padding)
  lead = x.shape[:-3]
  pooled = np.zeros((*lead, ho, wo, c), dtype=x.dtype)
  argmax = np.zeros((*lead, ho, wo, c), dtype=np.int64)
  for b in np.ndindex(lead):
    for ch in range(c):
      for i in range(ho):
        for j in range(wo):
          best, where = None, -1
          for dy in range(kh):
            for dx in range(kw):
              y, xx = i * sh + dy - top, j * sw + dx - left
              if not (0 <= y < h and 0 <= xx < w):
                continue  # padding
              v = x[b + (y, xx, ch)]
              if _greater(float(v), None if best is None else float(best)):
                best, where = v, y * w + xx
          pooled[b + (i, j, ch)] = best
          argmax[b + (i, j, ch)] = where
  return pooled, argmax


def max_unpool(x, argmax, *, output_shape):
  """``out[..., argmax // W, argmax % W, c] += x`` into zeros of spatial shape ``output_shape``.

  >>> max_unpool(np.array([[[5.]]]), np.array([[[1]]]), output_shape=(2, 2))[..., 0].tolist()
  [[0.0, 5.0], [0.0, 0.0]]
  """
  x, argmax = np.asarray(x), np.asarray(argmax)
  if argmax.shape != x.shape:
    raise ValueError(f"`argmax` shape {argmax.shape} != `x` shape {x.shape}.")
  h, w = output_shape
  lead, (ho, wo, c) = x.shape[:-3], x.shape[-3:]
  out = np.zeros((*lead, h, w, c), dtype=x.dtype)
  for b in np.ndindex(lead):
    for i in range(ho):
      for j in range(wo):
        for ch in range(c):
          idx = int(argmax[b + (i, j, ch)])
          if 0 <= idx < h * w:
            out[b + (idx // w, idx % w, ch)] += x[b + (i, j, ch)]
  return out
