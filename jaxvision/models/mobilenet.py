"""A MobileNet-style classifier (Howard et al. 2017) and the plain conv net it is compared
with: the same widths and strides, one with depthwise-separable blocks
(:class:`~jaxvision.models.layers.DepthwiseSeparableConv`), one with full 3 x 3 convolutions.

    MobileNetMNIST()   # stem 3x3 conv 16, separable 32, 64/2, 64, 128/2, 128, pool, dense
    PlainNetMNIST()    # the same with every separable block a full 3x3 conv + BN + ReLU

``width`` multiplies every channel count (MobileNet's alpha). Images ``[B, H, W, C]``
floats; returns logits ``[B, num_classes]``.
"""

from __future__ import annotations

import functools
from typing import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxvision.models.layers import DepthwiseSeparableConv

__all__ = ["MobileNet", "MobileNetMNIST", "PlainNetMNIST", "MobileNetTiny", "PlainNetTiny"]


class MobileNet(nn.Module):
  """Stem conv, then ``blocks`` of ``(features, stride)``, global average pool, dense.

  Attributes:
    num_classes: outputs.
    stem: channels of the first (full 3 x 3) convolution.
    blocks: ``(features, stride)`` per block.
    separable: depthwise-separable blocks (MobileNet) or full 3 x 3 convolutions (plain).
    width: channel multiplier.
    dropout: before the classifier.
  """

  num_classes: int = 10
  stem: int = 32
  blocks: Sequence[tuple[int, int]] = ((64, 1), (128, 2), (128, 1), (256, 2), (256, 1))
  separable: bool = True
  width: float = 1.0
  dropout: float = 0.0

  @nn.compact
  def __call__(self, x: jax.Array, *, train: bool = False) -> jax.Array:
    def ch(c):
      return max(8, int(round(c * self.width)))
    bn = functools.partial(nn.BatchNorm, use_running_average=not train, momentum=0.9)
    x = nn.relu(bn(name="stem_bn")(nn.Conv(ch(self.stem), (3, 3), use_bias=False,
                                           name="stem")(x)))
    for i, (f, s) in enumerate(self.blocks):
      if self.separable:
        x = DepthwiseSeparableConv(ch(f), strides=s, name=f"block{i}")(x, train=train)
      else:
        x = nn.Conv(ch(f), (3, 3), strides=s, use_bias=False, name=f"block{i}_conv")(x)
        x = nn.relu(bn(name=f"block{i}_bn")(x))
    x = jnp.mean(x, axis=(1, 2))
    x = nn.Dropout(self.dropout, deterministic=not train)(x)
    return nn.Dense(self.num_classes, name="classifier")(x)


_MNIST = dict(stem=16, blocks=((32, 1), (64, 2), (64, 1), (128, 2), (128, 1)))
MobileNetMNIST = functools.partial(MobileNet, **_MNIST)
PlainNetMNIST = functools.partial(MobileNet, separable=False, **_MNIST)
MobileNetTiny = functools.partial(MobileNet, stem=8, blocks=((16, 2), (16, 1)))
PlainNetTiny = functools.partial(MobileNet, stem=8, blocks=((16, 2), (16, 1)), separable=False)
