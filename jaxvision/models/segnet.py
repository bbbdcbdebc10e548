"""SegNet: an encoder-decoder that upsamples with the encoder's max-pooling indices.

SegNet (Badrinarayanan, Kendall and Cipolla, TPAMI 2017) is a VGG-style encoder whose blocks
(``Conv 3x3 -> BN -> ReLU``, repeated) each end in a ``2 x 2 / 2`` max pool that *remembers
where each maximum came from* (:func:`jaxvision.ops.pooling.max_pool_with_argmax`). The
decoder mirrors the encoder: each block first unpools (:func:`jaxvision.ops.pooling.
max_unpool`) — it puts every value back at exactly the position its encoder block took the
maximum from, zeros elsewhere — then densifies the sparse map with ``Conv 3x3 -> BN -> ReLU``
layers. The last conv of each decoder block outputs the width of the encoder block before it,
so the next unpooling gets as many channels as its indices have. A ``1 x 1`` conv gives the
class logits.

The model returns *logits* ``[B, H, W, num_classes]`` (float32); the softmax is applied by
the loss (``optax.softmax_cross_entropy_with_integer_labels``), the predicted class is
``argmax(logits)``.

Image sizes: any ``H, W >= 2^len(widths)``. The pools are ``VALID`` (floor): an odd row or
column is not pooled, and the unpooling goes back to the exact pre-pool shape, so that row
or column is zero after unpooling and filled in by the decoder's convs; the output has the
input's size. Smaller images raise a ``ValueError``.

Variants:

================  ==============================  ==================  =======================
variant           widths                          convs per block     what
================  ==============================  ==================  =======================
``SegNet``        64, 128, 256, 512, 512          2, 2, 3, 3, 3       the paper's (VGG16)
``SegNetSmall``   16, 32, 64, 64                  1, 1, 2, 2          2-core CPU, 120 x 160
``SegNetTiny``    4, 8                            1, 1                tests
================  ==============================  ==================  =======================

The decoder's inputs, unpooled maps and the encoder's argmax indices and pre-pool maps are
sown into the ``"intermediates"`` collection (``apply(..., mutable=["intermediates"])``) as
``encoder{i}``, ``argmax{i}``, ``decoder_input{i}`` and ``unpooled{i}``, so a test or a
figure can look at the unpooling inside the model; without that collection mutable this costs
nothing.

BatchNorm uses batch statistics and updates ``batch_stats`` when ``train=True`` (apply with
``mutable=["batch_stats"]``), the running averages otherwise.

>>> model = SegNetTiny(num_classes=3)
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

from jaxvision.ops import pooling

__all__ = ["SegNet", "SegNetSmall", "SegNetTiny"]

_he_normal = nn.initializers.variance_scaling(2.0, "fan_in", "truncated_normal")


class SegNet(nn.Module):
  """SegNet with pooling-index unpooling.

  Attributes:
    num_classes: output channels (11 for the digit scenes: background + 10 digits).
    widths: encoder block widths, shallow to deep; one ``2 x 2`` max pool per block.
    convs_per_block: ``Conv 3x3 -> BN -> ReLU`` layers per encoder block (and per mirrored
      decoder block); one int for all blocks or one per block.
    dtype: computation dtype (the logits are returned in float32).
    param_dtype: parameter dtype.

  Call ``model(x, train=...)`` with ``x: [B, H, W, C]`` floats; returns logits ``[B, H, W,
  num_classes]``.
  """

  num_classes: int = 11
  widths: Sequence[int] = (64, 128, 256, 512, 512)
  convs_per_block: int | Sequence[int] = (2, 2, 3, 3, 3)
  dtype: Any = jnp.float32
  param_dtype: Any = jnp.float32

  def _convs(self) -> tuple[int, ...]:
    widths = tuple(self.widths)
    if not widths or any(int(w) < 1 for w in widths):
      raise ValueError(f"`widths` must be a non-empty sequence of positive ints, got "
                       f"{self.widths!r}.")
    convs = self.convs_per_block
    convs = (convs,) * len(widths) if isinstance(convs, int) else tuple(convs)
    if len(convs) != len(widths) or any(int(c) < 1 for c in convs):
      raise ValueError(f"`convs_per_block` must be a positive int or one per block "
                       f"({len(widths)}), got {self.convs_per_block!r}.")
    return convs

  @nn.compact
  def __call__(self, x: jax.Array, *, train: bool) -> jax.Array:
    convs = self._convs()
    if x.ndim != 4:
      raise ValueError(f"`x` must have shape [B, H, W, C], got shape {tuple(x.shape)}.")
    depth = len(self.widths)
    if min(x.shape[1], x.shape[2]) < 2 ** depth:
      raise ValueError(f"SegNet with {depth} pooling blocks needs H and W >= {2 ** depth}, "
                       f"got {x.shape[1]} x {x.shape[2]}.")
    conv = functools.partial(nn.Conv, kernel_size=(3, 3), use_bias=False, padding="SAME",
                             kernel_init=_he_normal, dtype=self.dtype,
                             param_dtype=self.param_dtype)
    norm = functools.partial(nn.BatchNorm, use_running_average=not train, momentum=0.9,
                             epsilon=1e-5, dtype=self.dtype, param_dtype=self.param_dtype)

    def block(y, widths, prefix):
      for j, width in enumerate(widths):
        y = conv(width, name=f"{prefix}_conv{j}")(y)
        y = nn.relu(norm(name=f"{prefix}_bn{j}")(y))
      return y

    y = jnp.asarray(x, self.dtype)
    pools = []
    for i, (width, n) in enumerate(zip(self.widths, convs)):
      y = block(y, [width] * n, f"encoder{i}")
      self.sow("intermediates", f"encoder{i}", y)
      shape = (y.shape[1], y.shape[2])
      y, argmax = pooling.max_pool_with_argmax(y, window=2)
      self.sow("intermediates", f"argmax{i}", argmax)
      pools.append((argmax, shape))

    for i in reversed(range(depth)):
      argmax, shape = pools[i]
      self.sow("intermediates", f"decoder_input{i}", y)
      y = pooling.max_unpool(y, argmax, output_shape=shape)
      self.sow("intermediates", f"unpooled{i}", y)
      out = self.widths[max(i - 1, 0)]
      y = block(y, [self.widths[i]] * (convs[i] - 1) + [out], f"decoder{i}")
    logits = nn.Conv(self.num_classes, (1, 1), kernel_init=_he_normal, dtype=self.dtype,
                     param_dtype=self.param_dtype, name="classifier")(y)
    return logits.astype(jnp.float32)


SegNetSmall = functools.partial(SegNet, widths=(16, 32, 64, 64), convs_per_block=(1, 1, 2, 2))
SegNetTiny = functools.partial(SegNet, widths=(4, 8), convs_per_block=1)
