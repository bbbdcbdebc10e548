"""U-Net: a contracting path, an expanding path and skip connections concatenated between them.

U-Net (Ronneberger, Fischer and Brox, MICCAI 2015): every level is a *double conv*
(``Conv 3x3 -> BN -> ReLU`` twice; the paper has no BatchNorm and uses unpadded convs, here
the convs are ``SAME``-padded with BatchNorm, as most modern implementations do, so the output
has the input's size). The contracting path runs a double conv per width and a ``2 x 2 / 2``
max pool between levels; the deepest width is the bottleneck. The expanding path, per level:
upsample (``ConvTranspose 2x2 / 2`` to the skip's width, the paper's "up-convolution", here
:class:`~jaxvision.models.fcn.SubpixelConvTranspose`: the same layer computed as a 1 x 1 conv
and a depth-to-space, much faster on XLA:CPU; or
``up="resize"``: bilinear resize to the skip's size followed by a ``Conv 3x3``), concatenate
the skip connection of the same level (skip first, as the paper's crop-and-copy), double
conv. A ``1 x 1`` conv gives the class logits.

Image sizes: any ``H, W >= 2^(len(widths) - 1)``. The pools are ``VALID`` (floor), so the
transposed conv of an odd-sized level comes back one row or column short of its skip; the
upsampled map is then zero-padded (or, were it larger, cropped) symmetrically to the skip's
shape, as the common PyTorch port does, and the output has the input's size. Smaller images
raise a ``ValueError``.

The model returns *logits* ``[B, H, W, num_classes]`` (float32); the softmax is applied by
the loss (``optax.softmax_cross_entropy_with_integer_labels``), the predicted class is
``argmax(logits)``.

Variants:

=============  ============================  =========================================
variant        widths                        what
=============  ============================  =========================================
``UNet``       64, 128, 256, 512, 1024       the paper's
``UNetSmall``  16, 32, 64, 128               2-core CPU, 120 x 160
``UNetTiny``   4, 8                          tests
=============  ============================  =========================================

BatchNorm uses batch statistics and updates ``batch_stats`` when ``train=True`` (apply with
``mutable=["batch_stats"]``), the running averages otherwise.

>>> model = UNetTiny(num_classes=3)
>>> x = jnp.zeros((1, 33, 41, 3))
>>> init = lambda x: model.init(jax.random.key(0), x, train=False)
>>> variables = jax.eval_shape(init, x)  # shapes only; jax.jit(init)(x) gives the arrays
>>> jax.eval_shape(lambda v, x: model.apply(v, x, train=False), variables, x).shape
(1, 33, 41, 3)
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxvision.models.fcn import SubpixelConvTranspose

__all__ = ["UNet", "UNetSmall", "UNetTiny", "match_spatial"]

_he_normal = nn.initializers.variance_scaling(2.0, "fan_in", "truncated_normal")
_UPS = ("transpose", "resize")


def match_spatial(x: jax.Array, size: tuple[int, int]) -> jax.Array:
  """Crops or zero-pads ``x: [B, H, W, C]`` symmetrically to ``size = (H', W')``.

  Rows (columns) are taken off or added half at the top (left), the rest at the bottom
  (right): an odd difference puts the extra row at the bottom.

  >>> match_spatial(jnp.ones((1, 2, 3, 1)), (3, 2))[0, ..., 0]
  Array([[1., 1.],
         [1., 1.],
         [0., 0.]], dtype=float32)
  """
  for axis, target in ((1, size[0]), (2, size[1])):
    diff = target - x.shape[axis]
    if diff > 0:
      pad = [(0, 0)] * x.ndim
      pad[axis] = (diff // 2, diff - diff // 2)
      x = jnp.pad(x, pad)
    elif diff < 0:
      start = -diff // 2
      x = jax.lax.slice_in_dim(x, start, start + target, axis=axis)
  return x


class UNet(nn.Module):
  """U-Net with BatchNorm and same-padded convs.

  Attributes:
    num_classes: output channels (11 for the digit scenes: background + 10 digits).
    widths: double-conv widths, shallow to deep; the last is the bottleneck, with one
      ``2 x 2`` max pool before it and between every two earlier levels.
    up: ``"transpose"`` (``ConvTranspose 2x2 / 2``, the paper) or ``"resize"`` (bilinear
      resize to the skip's size, then ``Conv 3x3``; no checkerboard artefacts).
    dtype: computation dtype (the logits are returned in float32).
    param_dtype: parameter dtype.

  Call ``model(x, train=...)`` with ``x: [B, H, W, C]`` floats; returns logits ``[B, H, W,
  num_classes]``.
  """

  num_classes: int = 11
  widths: Sequence[int] = (64, 128, 256, 512, 1024)
  up: str = "transpose"
  dtype: Any = jnp.float32
  param_dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array, *, train: bool) -> jax.Array:
    widths = tuple(self.widths)
    if len(widths) < 2 or any(int(w) < 1 for w in widths):
      raise ValueError(f"`widths` must hold at least two positive ints, got {self.widths!r}.")
    if self.up not in _UPS:
      raise ValueError(f"`up` must be one of {_UPS}, got {self.up!r}.")
    if x.ndim != 4:
      raise ValueError(f"`x` must have shape [B, H, W, C], got shape {tuple(x.shape)}.")
    pools = len(widths) - 1
    if min(x.shape[1], x.shape[2]) < 2 ** pools:
      raise ValueError(f"UNet with {pools} max pools needs H and W >= {2 ** pools}, got "
                       f"{x.shape[1]} x {x.shape[2]}.")
    conv = functools.partial(nn.Conv, use_bias=False, padding="SAME", kernel_init=_he_normal,
                             dtype=self.dtype, param_dtype=self.param_dtype)
    norm = functools.partial(nn.BatchNorm, use_running_average=not train, momentum=0.9,
                             epsilon=1e-5, dtype=self.dtype, param_dtype=self.param_dtype)

    def double_conv(y, width, prefix):
      for j in range(2):
        y = conv(width, (3, 3), name=f"{prefix}_conv{j}")(y)
        y = nn.relu(norm(name=f"{prefix}_bn{j}")(y))
      return y

    y = jnp.asarray(x, self.dtype)
    skips = []
    for i, width in enumerate(widths[:-1]):
      y = double_conv(y, width, f"down{i}")
      skips.append(y)
      y = nn.max_pool(y, (2, 2), strides=(2, 2), padding="VALID")
    y = double_conv(y, widths[-1], "bottleneck")
    for i in reversed(range(pools)):
      skip = skips[i]
      size = (skip.shape[1], skip.shape[2])
      if self.up == "transpose":
        y = SubpixelConvTranspose(widths[i], (2, 2), (2, 2), kernel_init=_he_normal,
                                  dtype=self.dtype, param_dtype=self.param_dtype,
                                  name=f"up{i}_tconv")(y)
        y = match_spatial(y, size)
      else:
        y = jax.image.resize(y, (y.shape[0], *size, y.shape[-1]), method="bilinear")
        y = nn.Conv(widths[i], (3, 3), padding="SAME", kernel_init=_he_normal,
                    dtype=self.dtype, param_dtype=self.param_dtype, name=f"up{i}_conv")(y)
      y = double_conv(jnp.concatenate([skip, y], axis=-1), widths[i], f"up{i}")
    logits = nn.Conv(self.num_classes, (1, 1), kernel_init=_he_normal, dtype=self.dtype,
                     param_dtype=self.param_dtype, name="classifier")(y)
    return logits.astype(jnp.float32)


UNetSmall = functools.partial(UNet, widths=(16, 32, 64, 128))
UNetTiny = functools.partial(UNet, widths=(4, 8))
