"""A direct NumPy float64 convolution (loops over taps), the oracle of jaxvision.models.layers."""

from __future__ import annotations

import numpy as np


def conv2d(x: np.ndarray, kernel: np.ndarray, stride: int = 1, padding: int = 0,
           dilation: int = 1, groups: int = 1) -> np.ndarray:
  """A direct (loop over taps) NHWC / HWIO convolution, float64, with groups."""
  x = np.pad(np.asarray(x, np.float64), ((0, 0), (padding, padding), (padding, padding),
                                         (0, 0)))
  kernel = np.asarray(kernel, np.float64)
  kh, kw, cin_g, cout = kernel.shape
  n, h, w, cin = x.shape
  oh = (h - dilation * (kh - 1) - 1) // stride + 1
  ow = (w - dilation * (kw - 1) - 1) // stride + 1
  out = np.zeros((n, oh, ow, cout))
  per_group = cout // groups
  for g in range(groups):
    xs = x[..., g * cin_g:(g + 1) * cin_g]
    ks = kernel[..., g * per_group:(g + 1) * per_group]
    for i in range(kh):
      for j in range(kw):
        patch = xs[:, i * dilation:i * dilation + stride * (oh - 1) + 1:stride,
                   j * dilation:j * dilation + stride * (ow - 1) + 1:stride]
        out[..., g * per_group:(g + 1) * per_group] += patch @ ks[i, j]
  return out
