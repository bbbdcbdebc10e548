"""The convolution kinds of the survey (Dumoulin & Visin 2016 for the arithmetic), as Flax
modules and functions, and what each costs.

=====================  ==========================================  ============================
kind                   here                                        weights (bias excluded)
=====================  ==========================================  ============================
standard               ``flax.linen.Conv``                         ``k_h k_w C_in C_out``
dilated (atrous)       ``nn.Conv(kernel_dilation=d)``              same; field ``d (k - 1) + 1``
transposed             ``nn.ConvTranspose`` / :class:`TorchConvTranspose`  ``k_h k_w C_in C_out``
spatially separable    :class:`SpatiallySeparableConv`             ``k C_in M + k M C_out``
depthwise              :class:`DepthwiseConv` (``feature_group_count = C``)  ``k_h k_w C m``
depthwise-separable    :class:`DepthwiseSeparableConv`             ``k_h k_w C + C C_out``
=====================  ==========================================  ============================

:func:`conv_output_size` and :func:`conv_transpose_output_size` are the output-size formulas
(Dumoulin & Visin's relationships 1-14), tested against what the modules return.

**Flax's ConvTranspose vs PyTorch's ConvTranspose2d** (jax-ml/jax #11252, google/flax
#3137). PyTorch's ``ConvTranspose2d(k, stride=s, padding=p, output_padding=op)`` is the
gradient of a ``Conv2d(k, s, p)``: output ``(i - 1) s - 2p + k + op``, and its kernel is
applied *flipped* relative to the forward conv it transposes. Flax's ``ConvTranspose`` does
not flip the kernel unless ``transpose_kernel=True``, and its ``padding`` pads the
*dilated input* (``"SAME"`` gives ``i s``, ``"VALID"`` gives ``(i - 1) s + k``), not the
output. The mapping: ``transpose_kernel=True`` and explicit padding ``k - 1 - p`` before and
``k - 1 - p + op`` after on each axis; the kernel layouts are PyTorch's ``[C_in, C_out, k_h,
k_w]`` -> Flax's ``[k_h, k_w, C_out, C_in]`` when ``transpose_kernel=True``.
:class:`TorchConvTranspose` does this (with ``groups = 1``, ``dilation = 1``) and the tests
compare it with PyTorch numerically.

**Strided convolutions on XLA:CPU.** The input gradient of a strided convolution is a
convolution of the stride-dilated gradient, which XLA:CPU runs without its fast kernel: for
CapsNet's 9 x 9 stride-2 primary capsules on 128 images it took 5.05 s against 0.26 s for the
forward pass (this machine, JAX 0.10). :func:`space_to_depth_conv` computes the same strided
convolution as a stride-1 convolution of the space-to-depth input with the kernel rearranged
(``ceil(k / s)`` taps of ``s^2 C_in`` channels), whose gradients are ordinary convolutions:
0.25 s for that input gradient. :class:`StridedConv` is an ``nn.Conv`` with the same
parameters (names and shapes) that uses it.
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

__all__ = ["conv_output_size", "conv_transpose_output_size", "receptive_field",
           "conv_params", "depthwise_separable_params", "space_to_depth",
           "space_to_depth_conv", "depthwise_conv_shifts", "StridedConv",
           "SpatiallySeparableConv", "DepthwiseConv", "PointwiseConv", "DepthwiseSeparableConv",
           "TorchConvTranspose", "torch_conv_transpose_kernel"]


def _positive(value: Any, name: str) -> int:
  if isinstance(value, bool) or int(value) != value or int(value) < 1:
    raise ValueError(f"`{name}` must be a positive integer, got {value!r}.")
  return int(value)


def conv_output_size(size: int, kernel: int, *, stride: int = 1, padding: int = 0,
                     dilation: int = 1) -> int:
  """Output length of a convolution along one axis (Dumoulin & Visin, relationship 15):
  ``floor((i + 2p - d (k - 1) - 1) / s) + 1``.

  >>> conv_output_size(5, 3), conv_output_size(5, 3, padding=1, stride=2)
  (3, 3)
  >>> conv_output_size(7, 3, dilation=2)                  # a 5-wide field
  3
  """
  i, k = _positive(size, "size"), _positive(kernel, "kernel")
  s, d = _positive(stride, "stride"), _positive(dilation, "dilation")
  if int(padding) != padding or padding < 0:
    raise ValueError(f"`padding` must be an integer >= 0, got {padding!r}.")
  out = (i + 2 * int(padding) - d * (k - 1) - 1) // s + 1
  if out < 1:
    raise ValueError(f"a {k}-tap kernel (dilation {d}) does not fit an input of {i} with "
                     f"padding {padding}.")
  return out


def conv_transpose_output_size(size: int, kernel: int, *, stride: int = 1, padding: int = 0,
                               output_padding: int = 0, dilation: int = 1) -> int:
  """Output length of a transposed convolution in PyTorch's convention (relationship 14 plus
  ``output_padding``): ``(i - 1) s - 2p + d (k - 1) + 1 + op``; ``0 <= op < max(s, d)``.

  >>> conv_transpose_output_size(3, 3, stride=2, padding=1, output_padding=1)
  6
  """
  i, k = _positive(size, "size"), _positive(kernel, "kernel")
  s, d = _positive(stride, "stride"), _positive(dilation, "dilation")
  if int(padding) != padding or padding < 0:
    raise ValueError(f"`padding` must be an integer >= 0, got {padding!r}.")
  if int(output_padding) != output_padding or not 0 <= output_padding < max(s, d):
    raise ValueError(f"`output_padding` must be in [0, max(stride, dilation)) = [0, "
                     f"{max(s, d)}), got {output_padding!r}.")
  out = (i - 1) * s - 2 * int(padding) + d * (k - 1) + 1 + int(output_padding)
  if out < 1:
    raise ValueError(f"padding {padding} removes the whole output.")
  return out


def receptive_field(kernels: Sequence[int], strides: Sequence[int] | None = None,
                    dilations: Sequence[int] | None = None) -> int:
  """Receptive field of a stack of convolutions: ``1 + sum_l d_l (k_l - 1) prod_{m<l} s_m``.

  >>> receptive_field([3, 3, 3])                           # three 3 x 3 = one 7 x 7
  7
  >>> receptive_field([3, 3, 3], dilations=[1, 2, 4])      # WaveNet-style doubling
  15
  """
  n = len(kernels)
  strides = [1] * n if strides is None else list(strides)
  dilations = [1] * n if dilations is None else list(dilations)
  if len(strides) != n or len(dilations) != n:
    raise ValueError("`kernels`, `strides` and `dilations` must have the same length.")
  field, jump = 1, 1
  for k, s, d in zip(kernels, strides, dilations):
    field += _positive(d, "dilations") * (_positive(k, "kernels") - 1) * jump
    jump *= _positive(s, "strides")
  return field


def conv_params(in_channels: int, out_channels: int, kernel: int | Sequence[int], *,
                groups: int = 1, bias: bool = True) -> int:
  """Parameters of a (grouped) convolution: ``k_h k_w (C_in / g) C_out (+ C_out)``.

  >>> conv_params(32, 64, 3, bias=False), conv_params(32, 32, 3, groups=32, bias=False)
  (18432, 288)
  """
  kh, kw = (kernel, kernel) if isinstance(kernel, int) else tuple(kernel)
  g = _positive(groups, "groups")
  if in_channels % g or out_channels % g:
    raise ValueError(f"`groups` {g} must divide both channel counts ({in_channels}, "
                     f"{out_channels}).")
  return kh * kw * (in_channels // g) * out_channels + (out_channels if bias else 0)


def depthwise_separable_params(in_channels: int, out_channels: int, kernel: int, *,
                               multiplier: int = 1, bias: bool = True) -> int:
  """Parameters of a depthwise (``k k C m``) then pointwise (``C m C_out``) pair.

  >>> depthwise_separable_params(32, 64, 3, bias=False)    # 288 + 2048 vs 18432 full
  2336
  """
  mid = in_channels * multiplier
  return (conv_params(in_channels, mid, kernel, groups=in_channels, bias=bias)
          + conv_params(mid, out_channels, 1, bias=bias))


def space_to_depth(x: jax.Array, block: int) -> jax.Array:
  """``[B, H, W, C] -> [B, H / b, W / b, b * b * C]``, channel index ``(dy * b + dx) * C + c``
  (TensorFlow's ``space_to_depth`` order); ``H`` and ``W`` must be multiples of ``b``."""
  b = _positive(block, "block")
  n, h, w, c = x.shape
  if h % b or w % b:
    raise ValueError(f"`x`'s height and width ({h}, {w}) must be multiples of block {b}.")
  x = x.reshape(n, h // b, b, w // b, b, c).transpose(0, 1, 3, 2, 4, 5)
  return x.reshape(n, h // b, w // b, b * b * c)


def space_to_depth_conv(x: jax.Array, kernel: jax.Array, stride: int | tuple[int, int],
                        padding: str | Sequence[tuple[int, int]] = "VALID") -> jax.Array:
  """``lax.conv(x, kernel, stride, padding)`` (NHWC / HWIO) computed as a stride-1
  convolution of ``space_to_depth(x)`` with the kernel rearranged; same values, and its
  gradients are ordinary stride-1 convolutions (fast on XLA:CPU). Equal strides only."""
  s = stride if isinstance(stride, int) else stride[0]
  if not isinstance(stride, int) and stride[0] != stride[1]:
    raise ValueError(f"space_to_depth_conv needs equal strides, got {stride!r}.")
  s = _positive(s, "stride")
  kh, kw, ci, co = kernel.shape
  if x.ndim != 4 or x.shape[-1] != ci:
    raise ValueError(f"`x` must be [B, H, W, {ci}], got shape {tuple(x.shape)}.")
  if isinstance(padding, str):
    if padding.upper() == "SAME":
      pads = []
      for size, k in ((x.shape[1], kh), (x.shape[2], kw)):
        out = -(-size // s)
        total = max((out - 1) * s + k - size, 0)
        pads.append((total // 2, total - total // 2))
    elif padding.upper() == "VALID":
      pads = [(0, 0), (0, 0)]
    else:
      raise ValueError(f"`padding` must be 'SAME', 'VALID' or pairs, got {padding!r}.")
  else:
    pads = [tuple(p) for p in padding]
  x = jnp.pad(x, ((0, 0), pads[0], pads[1], (0, 0)))
  if s == 1:
    return jax.lax.conv_general_dilated(x, kernel, (1, 1), "VALID",
                                        dimension_numbers=("NHWC", "HWIO", "NHWC"))
  n, h, w, _ = x.shape
  oh, ow = (h - kh) // s + 1, (w - kw) // s + 1
  if oh < 1 or ow < 1:
    raise ValueError(f"a {kh} x {kw} kernel does not fit a {h} x {w} (padded) input.")
  th, tw = -(-kh // s), -(-kw // s)  # taps of the rearranged kernel
  kernel = jnp.pad(kernel, ((0, th * s - kh), (0, tw * s - kw), (0, 0), (0, 0)))
  kernel = kernel.reshape(th, s, tw, s, ci, co).transpose(0, 2, 1, 3, 4, 5)
  kernel = kernel.reshape(th, tw, s * s * ci, co)
  hn, wn = (oh - 1 + th) * s, (ow - 1 + tw) * s
  x = jnp.pad(x, ((0, 0), (0, max(0, hn - h)), (0, max(0, wn - w)), (0, 0)))[:, :hn, :wn]
  return jax.lax.conv_general_dilated(space_to_depth(x, s), kernel, (1, 1), "VALID",
                                      dimension_numbers=("NHWC", "HWIO", "NHWC"))


class StridedConv(nn.Module):
  """A strided ``nn.Conv`` (same ``kernel``/``bias`` parameters) computed by
  :func:`space_to_depth_conv`, for the fast gradient on XLA:CPU."""

  features: int
  kernel_size: tuple[int, int]
  strides: int = 2
  padding: Any = "VALID"
  use_bias: bool = True
  kernel_init: Callable = nn.initializers.lecun_normal()
  bias_init: Callable = nn.initializers.zeros

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    kh, kw = self.kernel_size
    kernel = self.param("kernel", self.kernel_init, (kh, kw, x.shape[-1], self.features))
    y = space_to_depth_conv(x, kernel.astype(x.dtype), self.strides, self.padding)
    if self.use_bias:
      y = y + self.param("bias", self.bias_init, (self.features,)).astype(y.dtype)
    return y


class SpatiallySeparableConv(nn.Module):
  """A ``k x 1`` convolution to ``mid_features`` then a ``1 x k`` one to ``features``.

  With ``mid_features = 1`` on one channel, it equals the full ``k x k`` convolution whose
  kernel is the outer product of the two (rank 1): ``2k`` weights instead of ``k^2``.
  """

  features: int
  kernel_size: int = 3
  mid_features: int | None = None
  strides: int = 1
  padding: str = "SAME"
  use_bias: bool = True

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    k = self.kernel_size
    mid = self.mid_features or self.features
    x = nn.Conv(mid, (k, 1), strides=(self.strides, 1), padding=self.padding,
                use_bias=False, name="vertical")(x)
    return nn.Conv(self.features, (1, k), strides=(1, self.strides), padding=self.padding,
                   use_bias=self.use_bias, name="horizontal")(x)


def _same_pads(size: int, k: int, s: int, d: int) -> tuple[int, int]:
  field = d * (k - 1) + 1
  out = -(-size // s)
  total = max((out - 1) * s + field - size, 0)
  return total // 2, total - total // 2


def depthwise_conv_shifts(x: jax.Array, kernel: jax.Array, strides: int = 1,
                          padding: Any = "SAME", dilation: int = 1) -> jax.Array:
  """A depthwise convolution (``kernel [k_h, k_w, 1, C m]``, output channel ``c m + j`` from
  input channel ``c``) as ``k_h k_w`` shifted, broadcast multiply-adds: elementwise work
  XLA fuses into one loop, where its grouped convolution takes a slow path on CPU."""
  kh, kw, one, cm = kernel.shape
  c = x.shape[-1]
  if one != 1 or cm % c:
    raise ValueError(f"`kernel` must be [k_h, k_w, 1, C * multiplier] for C = {c}, got "
                     f"{kernel.shape}.")
  s, d = int(strides), int(dilation)
  if isinstance(padding, str):
    if padding.upper() == "SAME":
      pads = [_same_pads(x.shape[1], kh, s, d), _same_pads(x.shape[2], kw, s, d)]
    elif padding.upper() == "VALID":
      pads = [(0, 0), (0, 0)]
    else:
      raise ValueError(f"`padding` must be 'SAME', 'VALID' or pairs, got {padding!r}.")
  else:
    pads = [tuple(int(v) for v in p) for p in padding]
  m = cm // c
  if m > 1:
    x = jnp.repeat(x, m, axis=-1)
  x = jnp.pad(x, ((0, 0), pads[0], pads[1], (0, 0)))
  oh = (x.shape[1] - d * (kh - 1) - 1) // s + 1
  ow = (x.shape[2] - d * (kw - 1) - 1) // s + 1
  out = None
  for i in range(kh):
    for j in range(kw):
      tap = jax.lax.slice(x, (0, i * d, j * d, 0),
                          (x.shape[0], i * d + s * (oh - 1) + 1, j * d + s * (ow - 1) + 1, cm),
                          (1, s, s, 1))
      term = tap * kernel[i, j, 0].astype(x.dtype)
      out = term if out is None else out + term
  return out


class DepthwiseConv(nn.Module):
  """One ``k x k`` filter per input channel (``multiplier`` of them): ``nn.Conv`` with
  ``feature_group_count = C``; ``C * multiplier`` outputs, ``k k C m`` weights.

  ``implementation``: ``"conv"`` (XLA's grouped convolution), ``"shifts"``
  (:func:`depthwise_conv_shifts`: the same values from fused multiply-adds), or ``None``:
  ``"shifts"`` on CPU, where it measured faster (``benchmarks/conv.py``), ``"conv"``
  elsewhere. The parameters are ``nn.Conv``'s either way."""

  kernel_size: tuple[int, int] = (3, 3)
  multiplier: int = 1
  strides: int = 1
  padding: Any = "SAME"
  kernel_dilation: int = 1
  use_bias: bool = True
  implementation: str | None = None

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    c = x.shape[-1]
    impl = self.implementation
    if impl is None:
      impl = "shifts" if jax.default_backend() == "cpu" else "conv"
    if impl not in ("conv", "shifts"):
      raise ValueError(f"`implementation` must be 'conv', 'shifts' or None, got {impl!r}.")
    return _DepthwiseKernel(c * self.multiplier, tuple(self.kernel_size), self.strides,
                            self.padding, self.kernel_dilation, self.use_bias, impl,
                            name="depthwise")(x)


class _DepthwiseKernel(nn.Module):
  """``nn.Conv(feature_group_count=C)``'s parameters (same names, shapes and initialisers)
  computed by either implementation."""

  features: int
  kernel_size: tuple[int, int]
  strides: int
  padding: Any
  dilation: int
  use_bias: bool
  implementation: str

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    c = x.shape[-1]
    kh, kw = self.kernel_size
    kernel = self.param("kernel", nn.initializers.lecun_normal(), (kh, kw, 1, self.features))
    kernel = kernel.astype(x.dtype)
    if self.implementation == "shifts":
      y = depthwise_conv_shifts(x, kernel, self.strides, self.padding, self.dilation)
    else:
      pad = self.padding.upper() if isinstance(self.padding, str) else [
          tuple(p) for p in self.padding]
      y = jax.lax.conv_general_dilated(x, kernel, (self.strides,) * 2, pad,
                                       rhs_dilation=(self.dilation,) * 2,
                                       feature_group_count=c,
                                       dimension_numbers=("NHWC", "HWIO", "NHWC"))
    if self.use_bias:
      y = y + self.param("bias", nn.initializers.zeros, (self.features,)).astype(y.dtype)
    return y


class PointwiseConv(nn.Module):
  """A 1 x 1 convolution (``nn.Conv(features, (1, 1))``'s parameters: ``kernel [1, 1, C,
  features]``, ``bias``) computed as one ``[B H W, C] @ [C, features]`` matmul, or as XLA's
  convolution (``implementation="conv"``). ``None``: the matmul on CPU, where it measured
  7.5x faster for a training step than XLA:CPU's 1 x 1 convolution (42.7 vs 320 ms,
  32 x 56 x 56 x 64 -> 128, forward + backward), the convolution elsewhere."""

  features: int
  use_bias: bool = True
  implementation: str | None = None

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    impl = self.implementation
    if impl is None:
      impl = "matmul" if jax.default_backend() == "cpu" else "conv"
    if impl not in ("conv", "matmul"):
      raise ValueError(f"`implementation` must be 'conv', 'matmul' or None, got {impl!r}.")
    c = x.shape[-1]
    kernel = self.param("kernel", nn.initializers.lecun_normal(), (1, 1, c, self.features))
    kernel = kernel.astype(x.dtype)
    if impl == "matmul":
      y = (x.reshape(-1, c) @ kernel[0, 0]).reshape(*x.shape[:-1], self.features)
    else:
      y = jax.lax.conv_general_dilated(x, kernel, (1, 1), "VALID",
                                       dimension_numbers=("NHWC", "HWIO", "NHWC"))
    if self.use_bias:
      y = y + self.param("bias", nn.initializers.zeros, (self.features,)).astype(y.dtype)
    return y


class DepthwiseSeparableConv(nn.Module):
  """MobileNet's block: depthwise ``k x k`` -> BatchNorm -> ReLU -> pointwise ``1 x 1`` ->
  BatchNorm -> ReLU (Howard et al. 2017); ``norm=False`` gives the bare pair (with biases).
  ``implementation``: ``"conv"`` (XLA's grouped and 1 x 1 convolutions), ``"shifts"``
  (:func:`depthwise_conv_shifts` and :class:`PointwiseConv`'s matmul) or ``None`` (the
  latter on CPU: 2.2x faster for a MobileNet layer's training step there)."""

  features: int
  kernel_size: tuple[int, int] = (3, 3)
  strides: int = 1
  multiplier: int = 1
  norm: bool = True
  activation: Callable = nn.relu
  implementation: str | None = None

  @nn.compact
  def __call__(self, x: jax.Array, *, train: bool = False) -> jax.Array:
    x = DepthwiseConv(self.kernel_size, self.multiplier, self.strides,
                      use_bias=not self.norm, implementation=self.implementation,
                      name="depthwise")(x)
    if self.norm:
      x = nn.BatchNorm(use_running_average=not train, momentum=0.9, name="depthwise_bn")(x)
      x = self.activation(x)
    x = PointwiseConv(self.features, use_bias=not self.norm,
                      implementation=None if self.implementation is None else (
                          "conv" if self.implementation == "conv" else "matmul"),
                      name="pointwise")(x)
    if self.norm:
      x = nn.BatchNorm(use_running_average=not train, momentum=0.9, name="pointwise_bn")(x)
      x = self.activation(x)
    return x


class TorchConvTranspose(nn.Module):
  """PyTorch's ``ConvTranspose2d(C_in, features, kernel_size, stride, padding,
  output_padding)`` in Flax: same output size and, with :func:`torch_conv_transpose_kernel`
  applied to PyTorch's weight, the same values."""

  features: int
  kernel_size: int
  stride: int = 1
  padding: int = 0
  output_padding: int = 0
  use_bias: bool = True

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    k, s, p, op = self.kernel_size, self.stride, self.padding, self.output_padding
    conv_transpose_output_size(x.shape[1], k, stride=s, padding=p, output_padding=op)
    lo, hi = k - 1 - p, k - 1 - p + op
    if lo < 0:
      raise ValueError(f"`padding` {p} > kernel_size - 1 = {k - 1} is not supported.")
    return nn.ConvTranspose(self.features, (k, k), strides=(s, s),
                            padding=((lo, hi), (lo, hi)), transpose_kernel=True,
                            use_bias=self.use_bias, name="conv_transpose")(x)


def torch_conv_transpose_kernel(weight: Any) -> jax.Array:
  """PyTorch ``ConvTranspose2d.weight [C_in, C_out, k_h, k_w]`` -> the ``kernel`` of
  :class:`TorchConvTranspose` ``[k_h, k_w, C_out, C_in]``."""
  w = jnp.asarray(weight)
  if w.ndim != 4:
    raise ValueError(f"`weight` must be [C_in, C_out, k_h, k_w], got shape {w.shape}.")
  return jnp.transpose(w, (2, 3, 1, 0))
