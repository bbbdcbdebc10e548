"""A fully convolutional network with a PSPNet-style feature pyramid, as in the source book.

The source book (Atienza, *Advanced Deep Learning with TensorFlow 2 and Keras*, ch. 12) builds
its semantic segmenter (FCN, Long et al. 2015, with the pyramid pooling idea of PSPNet, Zhao et
al. 2017) on a ResNet backbone:

1. the backbone (:mod:`jaxvision.models.resnet`, the book's ResNet56v2) gives features ``x`` at
   1/4 of the image size;
2. a feature pyramid ``[x, avgpool2(x), conv_s2(avgpool2(x)), conv_s2(conv_s2(...))]``: 1/4,
   1/8, 1/16 and 1/32 of the image (each strided conv is ``Conv 3x3 / 2 -> BN -> ReLU`` with
   ``pyramid_widths`` filters, 512 in the book);
3. every level but the first: ``Conv 3x3 (level_width = 256) -> BN -> ReLU``, then bilinear
   upsampling back to the 1/4 grid (x2, x4, x8 in the book; ``jax.image.resize`` to the exact
   1/4 shape here, so sizes that do not halve evenly still line up);
4. concatenate the levels on channels, two ``ConvTranspose 3x3 / 2 -> BN -> ReLU``
   (``upsample_width = 256``), which bring the map back to the full image size;
5. a ``1 x 1`` conv to ``num_classes`` channels.

The model returns the *logits* ``[B, H, W, num_classes]`` (float32); the book's final softmax
is applied by the loss (``optax.softmax_cross_entropy_with_integer_labels``) and by whoever
needs probabilities (``jax.nn.softmax(logits)``); the predicted class is ``argmax(logits)``.

Image sizes: ``H`` and ``W`` must be multiples of 4 (the two stride-2 transposed convs bring
the 1/4 features back to exactly ``4 * (H / 4)``) and at least 8 (the average pool needs a
1/4 map of at least 2 x 2); anything else raises a ``ValueError``. The backbone must really
give 1/4-size features: ``ResNetV2`` with a stride-1 stem and three stages (the book), or a
stride-2 stem and two stages (the small variants); a backbone at another stride raises a
``ValueError`` naming it. The pyramid levels themselves may have odd sizes (120 x 160 images:
30 x 40, 15 x 20, 8 x 10, 4 x 5), hence the resize to an explicit shape.

Details that differ from the book's Keras code, on purpose: convs followed by BatchNorm have
no bias (BatchNorm's offset makes it redundant; the book keeps Keras' default bias); BatchNorm
uses PyTorch-style momentum 0.9, epsilon 1e-5 as :mod:`jaxvision.models.resnet` does. The
transposed convs are :class:`SubpixelConvTranspose`, numerically the same layer as
``nn.ConvTranspose(padding="SAME")`` (same parameter) but computed as one ordinary conv at the
input's resolution and a depth-to-space, because XLA:CPU's zero-dilated transposed conv is
far slower (``experiments/results/measurements.md``).

Variants:

===============  ================================================  ==============  ==========
variant          backbone                                          pyramid widths  level / up
===============  ================================================  ==============  ==========
``FCNBook``      ``ResNet56v2`` (stride-1 stem, 3 stages, 256 ch)  512, 512        256 / 256
``FCNSmall``     ``ResNetV2(depth=8, width=8, 2 stages, stem 2)``  128, 128        64 / 64
``FCNTiny``      ``ResNetV2(depth=8, width=2, 2 stages, stem 2)``  8, 8            8 / 8
===============  ================================================  ==============  ==========

``FCNSmall`` is sized to train in minutes on a 2-core CPU at 120 x 160; ``FCNTiny`` is for
tests.

BatchNorm uses batch statistics and updates ``batch_stats`` when ``train=True`` (apply with
``mutable=["batch_stats"]``), the running averages otherwise.

>>> model = FCNTiny(num_classes=3)
>>> x = jnp.zeros((1, 32, 40, 3))
>>> init = lambda x: model.init(jax.random.key(0), x, train=False)
>>> variables = jax.eval_shape(init, x)  # shapes only; jax.jit(init)(x) gives the arrays
>>> jax.eval_shape(lambda v, x: model.apply(v, x, train=False), variables, x).shape
(1, 32, 40, 3)
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from jaxvision.models.resnet import ResNet56v2, ResNetV2

__all__ = ["FCN", "FCNBook", "FCNSmall", "FCNMedium", "FCNTiny", "SubpixelConvTranspose"]

_he_normal = nn.initializers.variance_scaling(2.0, "fan_in", "truncated_normal")

# The spatial stride of the backbone features that the two transposed convs undo.
FEATURE_STRIDE = 4


def _check_image_size(shape: tuple[int, ...], name: str) -> None:
  if len(shape) != 4:
    raise ValueError(f"`x` must have shape [B, H, W, C], got shape {tuple(shape)}.")
  h, w = shape[1], shape[2]
  if h % FEATURE_STRIDE or w % FEATURE_STRIDE or min(h, w) < 2 * FEATURE_STRIDE:
    raise ValueError(f"{name} needs H and W that are multiples of {FEATURE_STRIDE} and at least "
                     f"{2 * FEATURE_STRIDE} (1/4-size backbone features brought back by two "
                     f"stride-2 transposed convs), got {h} x {w}.")


def _phase_taps(k: int, s: int) -> tuple[np.ndarray, int, int]:
  """Which kernel tap of a ``SAME`` transposed conv feeds which output phase, along one axis.

  ``lax.conv_transpose(padding="SAME")`` is a correlation of the zero-dilated input padded by
  ``pad_a`` in front. Output ``o = s m + a`` then reads input ``m + d`` through tap ``t``
  whenever ``d = (a + t - pad_a) / s`` is an integer. Returns ``select [D, s, k]`` (1 where
  offset ``d_min + i`` and phase ``a`` use tap ``t``), ``d_min`` and ``d_max``.
  """
  pad_len = k + s - 2
  pad_a = k - 1 if s > k - 1 else -(-pad_len // 2)  # as jax.lax's _conv_transpose_padding
  taps = [((a + t - pad_a) // s, a, t) for a in range(s) for t in range(k)
          if (a + t - pad_a) % s == 0]
  d_min, d_max = min(d for d, _, _ in taps), max(d for d, _, _ in taps)
  select = np.zeros((d_max - d_min + 1, s, k), np.float32)
  for d, a, t in taps:
    select[d - d_min, a, t] = 1.0
  return select, d_min, d_max


def _shift_pad(x: jax.Array, axis: int, lo: int, hi: int) -> jax.Array:
  """Pads ``lo`` zeros before and ``hi`` after along ``axis``; negative amounts crop."""
  pad = [(0, 0)] * x.ndim
  pad[axis] = (max(lo, 0), max(hi, 0))
  x = jnp.pad(x, pad)
  start, stop = max(-lo, 0), x.shape[axis] - max(-hi, 0)
  return jax.lax.slice_in_dim(x, start, stop, axis=axis)


class SubpixelConvTranspose(nn.Module):
  """``nn.ConvTranspose(padding="SAME")`` computed as one stride-1 conv and a depth-to-space.

  A transposed conv of stride ``s`` is ``s^2`` interleaved ordinary convs of the *input*
  ("phases", Shi et al. 2016): output pixel ``(s i + a, s j + b)`` only ever meets the taps
  of the kernel that land on real (not inserted-zero) input pixels. This layer scatters the
  ``k x k`` kernel into one small kernel with ``s^2 * features`` outputs, runs it on the input
  at the input's resolution and rearranges the channels into the ``s``-times larger map. The
  result equals ``nn.ConvTranspose(features, kernel_size, strides, padding="SAME")`` with
  the same ``kernel`` parameter (same name, shape ``[kh, kw, in, out]`` and init), but runs
  about 4x fewer multiply-adds for the book's ``3 x 3 / 2`` than XLA's zero-dilated
  convolution, whose backward pass is also very slow on XLA:CPU
  (``experiments/results/measurements.md``).

  Attributes:
    features: output channels.
    kernel_size: ``(kh, kw)``.
    strides: ``(sh, sw)``; the output is ``(sh H, sw W)``.
    use_bias: add a bias.
    kernel_init: kernel initializer (of the ``[kh, kw, in, out]`` kernel).
    bias_init: bias initializer.
    dtype: computation dtype.
    param_dtype: parameter dtype.

  >>> x = jax.random.normal(jax.random.key(0), (1, 5, 7, 3))
  >>> layer = SubpixelConvTranspose(4, (3, 3), (2, 2))
  >>> variables = layer.init(jax.random.key(1), x)
  >>> ref = nn.ConvTranspose(4, (3, 3), (2, 2), padding="SAME").apply(variables, x)
  >>> y = layer.apply(variables, x)
  >>> y.shape, bool(jnp.allclose(y, ref, atol=1e-5))
  ((1, 10, 14, 4), True)
  """

  features: int
  kernel_size: tuple[int, int] = (3, 3)
  strides: tuple[int, int] = (2, 2)
  use_bias: bool = True
  kernel_init: Callable[..., Any] = nn.initializers.lecun_normal()
  bias_init: Callable[..., Any] = nn.initializers.zeros
  dtype: Any = jnp.float32
  param_dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    (kh, kw), (sh, sw) = self.kernel_size, self.strides
    cin = x.shape[-1]
    kernel = self.param("kernel", self.kernel_init, (kh, kw, cin, self.features),
                        self.param_dtype)
    sel_h, h_min, h_max = _phase_taps(kh, sh)
    sel_w, w_min, w_max = _phase_taps(kw, sw)
    big = jnp.einsum("dak,ebl,klio->deiabo", sel_h, sel_w, kernel.astype(jnp.float32))
    big = big.reshape(sel_h.shape[0], sel_w.shape[0], cin, sh * sw * self.features)
    x = jnp.asarray(x, self.dtype)
    x = _shift_pad(_shift_pad(x, 1, -h_min, h_max), 2, -w_min, w_max)
    y = jax.lax.conv_general_dilated(x, big.astype(self.dtype), (1, 1), "VALID",
                                     dimension_numbers=("NHWC", "HWIO", "NHWC"))
    b, h, w, _ = y.shape
    y = y.reshape(b, h, w, sh, sw, self.features).transpose(0, 1, 3, 2, 4, 5)
    y = y.reshape(b, h * sh, w * sw, self.features)
    if self.use_bias:
      bias = self.param("bias", self.bias_init, (self.features,), self.param_dtype)
      y = y + jnp.asarray(bias, self.dtype)
    return y


class FCN(nn.Module):
  """The book's FCN: 1/4-size backbone features, a 4-level pyramid, two transposed convs.

  Attributes:
    num_classes: output channels (11 for the digit scenes: background + 10 digits).
    backbone: a callable returning a flax module (a ``functools.partial`` of
      :class:`~jaxvision.models.resnet.ResNetV2`, say) whose ``__call__(x, train=)`` returns
      ``{"features": [B, H/4, W/4, C], ...}``; it is built with this module's ``dtype`` and
      ``param_dtype`` and named ``"backbone"``.
    pyramid_widths: filters of the strided ``Conv 3x3 / 2`` levels after the average pool
      (the book: two levels of 512); their number sets the pyramid depth.
    level_width: filters of the ``Conv 3x3 -> BN -> ReLU`` applied to every non-main level
      before upsampling (256).
    upsample_width: filters of the two ``ConvTranspose 3x3 / 2`` (256).
    dtype: computation dtype (the logits are returned in float32).
    param_dtype: parameter dtype.

  Call ``model(x, train=...)`` with ``x: [B, H, W, C]`` floats; returns logits ``[B, H, W,
  num_classes]``.
  """

  num_classes: int = 11
  backbone: Callable[..., nn.Module] = ResNet56v2
  pyramid_widths: Sequence[int] = (512, 512)
  level_width: int = 256
  upsample_width: int = 256
  dtype: Any = jnp.float32
  param_dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array, *, train: bool) -> jax.Array:
    _check_image_size(x.shape, "FCN")
    if self.num_classes < 1:
      raise ValueError(f"`num_classes` must be >= 1, got {self.num_classes}.")
    conv = functools.partial(nn.Conv, use_bias=False, padding="SAME", kernel_init=_he_normal,
                             dtype=self.dtype, param_dtype=self.param_dtype)
    norm = functools.partial(nn.BatchNorm, use_running_average=not train, momentum=0.9,
                             epsilon=1e-5, dtype=self.dtype, param_dtype=self.param_dtype)
    h, w = x.shape[1], x.shape[2]
    backbone = self.backbone(dtype=self.dtype, param_dtype=self.param_dtype, name="backbone")
    features = backbone(jnp.asarray(x, self.dtype), train=train)["features"]
    fh, fw = features.shape[1], features.shape[2]
    if (fh * FEATURE_STRIDE, fw * FEATURE_STRIDE) != (h, w):
      raise ValueError(f"FCN `backbone` must give features at 1/{FEATURE_STRIDE} of the image "
                       f"size ({h // FEATURE_STRIDE} x {w // FEATURE_STRIDE}), got {fh} x "
                       f"{fw} for a {h} x {w} image.")

    # The pyramid: [x, avgpool 2, conv s2, conv s2, ...].
    level = nn.avg_pool(features, (2, 2), strides=(2, 2), padding="VALID")
    levels = [level]
    for i, width in enumerate(self.pyramid_widths):
      level = conv(width, (3, 3), strides=2, name=f"pyramid_conv{i}")(level)
      level = nn.relu(norm(name=f"pyramid_bn{i}")(level))
      levels.append(level)

    # Every non-main level: Conv 3x3 -> BN -> ReLU, then bilinear upsampling to 1/4.
    outputs = [features]
    for i, level in enumerate(levels):
      y = conv(self.level_width, (3, 3), name=f"level_conv{i}")(level)
      y = nn.relu(norm(name=f"level_bn{i}")(y))
      y = jax.image.resize(y, (y.shape[0], fh, fw, y.shape[-1]), method="bilinear")
      outputs.append(y)
    y = jnp.concatenate(outputs, axis=-1)

    # Back to the full size: two ConvTranspose 3x3 / 2 -> BN -> ReLU, then 1x1 to classes.
    for i in range(2):
      y = SubpixelConvTranspose(self.upsample_width, (3, 3), (2, 2), use_bias=False,
                                kernel_init=_he_normal, dtype=self.dtype,
                                param_dtype=self.param_dtype, name=f"tconv{i}")(y)
      y = nn.relu(norm(name=f"tconv_bn{i}")(y))
    logits = nn.Conv(self.num_classes, (1, 1), kernel_init=_he_normal, dtype=self.dtype,
                     param_dtype=self.param_dtype, name="classifier")(y)
    return logits.astype(jnp.float32)


FCNBook = functools.partial(FCN, backbone=ResNet56v2, pyramid_widths=(512, 512),
                            level_width=256, upsample_width=256)
FCNSmall = functools.partial(
    FCN, backbone=functools.partial(ResNetV2, depth=8, width=8, num_stages=2, stem_strides=2),
    pyramid_widths=(128, 128), level_width=64, upsample_width=64)
FCNMedium = functools.partial(
    FCN, backbone=functools.partial(ResNetV2, depth=14, width=16, num_stages=2, stem_strides=2),
    pyramid_widths=(128, 128), level_width=64, upsample_width=64)
FCNTiny = functools.partial(
    FCN, backbone=functools.partial(ResNetV2, depth=8, width=2, num_stages=2, stem_strides=2),
    pyramid_widths=(8, 8), level_width=8, upsample_width=8)
