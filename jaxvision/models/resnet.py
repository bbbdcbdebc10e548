"""ResNet v1 and v2 backbones for dense prediction (SSD, FCN), as in the source book.

The source book (Atienza, ch. 2, 11, 12) builds its detectors and segmenters on the CIFAR-style
ResNets of He et al.: a 3x3 stem conv, then ``num_stages`` stages (the first at the stem's
resolution, each later one starting with a stride-2 block), ``n`` residual blocks per stage.

* :class:`ResNetV1` (He et al. 2016a): basic blocks ``conv-BN-ReLU-conv-BN (+ shortcut) ->
  ReLU``, widths ``width * 2^stage``; depth ``6n + 2`` for three stages.
* :class:`ResNetV2` (He et al. 2016b, pre-activation): bottleneck blocks
  ``BN-ReLU-conv1x1 -> BN-ReLU-conv3x3 -> BN-ReLU-conv1x1 (+ shortcut)``; stage ``s`` has
  inner width ``width * 2^s`` (the first stage ``width``) and output width four times the
  inner width of the next stage's input, as the book's ``resnet_v2``: 16 -> 64, 64 -> 128,
  128 -> 256; depth ``9n + 2`` for three stages, ends with BN-ReLU.

Both return a dict: ``"features"`` (the last stage's output, at stride ``stem_strides *
2^(num_stages - 1)``) and ``"stages"`` (every stage's output, for skip connections).
``ResNet56v2`` is the book's detection backbone (``n = 6``: 1/4 size, 256 channels for a
stride-1 stem); the smaller variants keep the same structure for CPU training and tests.

BatchNorm uses batch statistics and updates ``batch_stats`` when ``train=True`` (apply with
``mutable=["batch_stats"]``), the running averages otherwise. Convs are He-normal (fan-in) as in
the book; ``dtype`` is the computation dtype (bfloat16 for mixed precision), parameters stay
``param_dtype``.
"""

from __future__ import annotations

import functools
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

__all__ = ["ResNetV1", "ResNetV2", "ResNet20v1", "ResNet56v2", "ResNet20v2", "ResNet11v2",
           "ResNetTiny"]

_he_normal = nn.initializers.variance_scaling(2.0, "fan_in", "truncated_normal")


def _check_depth(depth: int, per_block: int, num_stages: int, name: str) -> int:
  extra = depth - 2
  if isinstance(depth, bool) or not isinstance(depth, int) or depth < 2 + per_block * (
      num_stages) or extra % (per_block * num_stages):
    raise ValueError(f"{name} `depth` must be {per_block * num_stages}n + 2 with n >= 1, got "
                     f"{depth!r}.")
  return extra // (per_block * num_stages)


class _ResNet(nn.Module):
  """The fields and the stem both families share (see :class:`ResNetV1`, :class:`ResNetV2`)."""

  depth: int
  width: int = 16
  num_stages: int = 3
  stem_strides: int = 1
  dtype: Any = jnp.float32
  param_dtype: Any = jnp.float32

  def _stem(self, x: jax.Array, *, train: bool, per_block: int):
    """``(n, stem output, conv, norm)``: blocks per stage, the 3x3 stem conv-BN-ReLU applied to
    ``x``, and the He-normal bias-free conv and BatchNorm (momentum 0.9, epsilon 1e-5)
    constructors of every layer."""
    n = _check_depth(self.depth, per_block, self.num_stages, type(self).__name__)
    conv = functools.partial(nn.Conv, use_bias=False, padding="SAME", kernel_init=_he_normal,
                             dtype=self.dtype, param_dtype=self.param_dtype)
    norm = functools.partial(nn.BatchNorm, use_running_average=not train, momentum=0.9,
                             epsilon=1e-5, dtype=self.dtype, param_dtype=self.param_dtype)
    x = jnp.asarray(x, self.dtype)
    x = nn.relu(norm()(conv(self.width, (3, 3), strides=self.stem_strides)(x)))
    return n, x, conv, norm


class ResNetV1(_ResNet):
  """ResNet v1 with basic blocks; depth ``2 num_stages n + 2`` (``6n + 2`` for 3 stages).

  Attributes:
    depth: total conv layers (``20`` -> ``n = 3``).
    width: stem and first-stage width; stage ``s`` has ``width * 2^s`` channels.
    num_stages: number of stages (each after the first halves the resolution).
    stem_strides: stride of the stem conv (1 as in the book; 2 halves the cost).
    dtype: computation dtype.
    param_dtype: parameter dtype.
  """

  depth: int = 20

  @nn.compact
  def __call__(self, x: jax.Array, *, train: bool) -> dict[str, Any]:
    n, x, conv, norm = self._stem(x, train=train, per_block=2)
    stages = []
    for s in range(self.num_stages):
      filters = self.width * 2 ** s
      for b in range(n):
        strides = 2 if s > 0 and b == 0 else 1
        y = nn.relu(norm()(conv(filters, (3, 3), strides=strides)(x)))
        y = norm(scale_init=nn.initializers.ones)(conv(filters, (3, 3))(y))
        if strides != 1 or x.shape[-1] != filters:
          x = norm()(conv(filters, (1, 1), strides=strides)(x))
        x = nn.relu(x + y)
      stages.append(x)
    return {"features": x, "stages": stages}


class ResNetV2(_ResNet):
  """Pre-activation ResNet v2 with bottleneck blocks; depth ``3 num_stages n + 2``.

  Attributes:
    depth: total conv layers (``56`` -> ``n = 6`` for three stages, the book's ResNet56v2).
    width: stem width. Stage 0 has inner (bottleneck) width ``width`` and output ``4
      width``; every later stage takes the previous output as its inner width and doubles
      it, as the book's ``resnet_v2``: inner 16, 64, 128 and outputs 64, 128, 256 for
      ``width = 16``.
    num_stages: number of stages (each after the first halves the resolution).
    stem_strides: stride of the stem conv.
    dtype: computation dtype.
    param_dtype: parameter dtype.
  """

  depth: int = 56

  @nn.compact
  def __call__(self, x: jax.Array, *, train: bool) -> dict[str, Any]:
    n, x, conv, norm = self._stem(x, train=train, per_block=3)
    inner = self.width
    stages = []
    for s in range(self.num_stages):
      out = inner * 4 if s == 0 else inner * 2
      for b in range(n):
        strides = 2 if s > 0 and b == 0 else 1
        # The book's first block of the first stage skips the pre-activation (the stem
        # already ended in BN-ReLU).
        y = x if s == 0 and b == 0 else nn.relu(norm()(x))
        shortcut = x
        if b == 0:
          shortcut = conv(out, (1, 1), strides=strides, use_bias=True)(x)
        y = conv(inner, (1, 1), strides=strides, use_bias=True)(y)
        y = conv(inner, (3, 3), use_bias=True)(nn.relu(norm()(y)))
        y = conv(out, (1, 1), use_bias=True)(nn.relu(norm()(y)))
        x = shortcut + y
      stages.append(x)
      inner = out
    x = nn.relu(norm()(x))
    stages[-1] = x
    return {"features": x, "stages": stages}


ResNet20v1 = functools.partial(ResNetV1, depth=20)
ResNet56v2 = functools.partial(ResNetV2, depth=56)
ResNet20v2 = functools.partial(ResNetV2, depth=20)
ResNet11v2 = functools.partial(ResNetV2, depth=11)
ResNetTiny = functools.partial(ResNetV2, depth=8, width=4, num_stages=2)
