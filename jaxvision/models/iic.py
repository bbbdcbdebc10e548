"""Invariant Information Clustering networks: a conv trunk shared by several softmax sub-heads.

IIC (Ji, Henriques and Vedaldi, ICCV 2019; Atienza, *Advanced Deep Learning with TensorFlow 2
and Keras*, ch. 13) trains a network ``x -> softmax`` so that two views of the same image land
in the same cluster. The network is a small VGG-style trunk followed by ``k`` independent
sub-heads of ``C`` clusters (each ``Dense -> softmax``) and, in the paper, ``k`` more
"overclustering" sub-heads of ``C_over > C`` clusters, all reading the same trunk features.

The trunk (:class:`IICTrunk`) is a list of conv widths: every width is ``Conv(k x k, same
padding) -> BatchNorm -> ReLU``, with a ``2 x 2`` max pool (stride 2, ``VALID``, i.e. floor)
*between* consecutive convs, then the feature map is flattened (or averaged, see ``pooling``),
optionally followed by a ``Dense -> ReLU`` layer. The variants:

=================  ====================  ======  ==========  ====================================
variant            widths                kernel  final pool  reproduces
=================  ====================  ======  ==========  ====================================
``IICBookVGG``     64, 128, 256, 512     3 x 3   no          the book's VGG cfg "F"
                                                             ``[64, M, 128, M, 256, M, 512]``
``IICPaper5x5``    64, 128, 256, 512     5 x 5   no          the paper's MNIST net (ClusterNet6c)
``IICSeed004``     32, 64, 128           3 x 3   yes         a seed-style small conv net (3 conv
                                                             blocks, then ``Dense(128) -> ReLU``)
``IICFastCPU``     16, 32, 64, 128       3 x 3   no          a quarter-width cfg "F", small
                                                             enough to train on 2 CPU cores
``IICTiny``        4, 8                  3 x 3   no          nothing: for tests
=================  ====================  ======  ==========  ====================================

Pooling of the last feature map: ``"flatten"`` (the default) is what the book (Keras
``Flatten``) and the paper (``x.view(bn, -1)``) do, so their head sizes are reproduced exactly:
a 24 x 24 crop gives a 3 x 3 x 512 map and 4608 features. With flatten the feature size depends
on the image size: 24 x 24 and 28 x 28 inputs both give 3 x 3 maps (three floor-halvings), so
parameters transfer between them, but 20 x 20 gives 2 x 2 and does not. ``pooling="mean"``
(global average pooling) makes the features ``widths[-1]`` long whatever the image size.

Numerics: parameters are float32 (``param_dtype``); ``dtype`` is the computation dtype of convs,
BatchNorm and the heads' matmuls (bfloat16 for mixed precision; BatchNorm statistics are always
reduced in float32); the softmax is always computed in float32 and the probabilities returned
as float32. BatchNorm uses batch statistics and updates the ``batch_stats`` collection when
``train=True`` (apply with ``mutable=["batch_stats"]``) and the running averages otherwise.

Initialisation follows the references: convs He-normal (fan-in), BatchNorm scale 1 / bias 0,
head kernels Glorot-uniform (the book's Keras default) or ``N(0, 0.01)`` (the paper), biases 0.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Sequence
from typing import Any, Literal

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxvision import _checks

__all__ = [
    "IICTrunk",
    "IICModel",
    "count_params",
    "Seed004Trunk",
    "BookVGGTrunk",
    "Paper5x5Trunk",
    "FastCPUTrunk",
    "TinyTrunk",
    "IICSeed004",
    "IICBookVGG",
    "IICPaper5x5",
    "IICFastCPU",
    "IICTiny",
]

Initializer = Callable[..., Any]
Dtype = Any

_POOLINGS = ("flatten", "mean")


def count_params(params: Any) -> int:
  """The number of scalars in a pytree of arrays (params, a variables dict, or shape structs).

  Args:
    params: any pytree whose leaves have a ``shape``: arrays, or the
      ``jax.ShapeDtypeStruct`` leaves of ``jax.eval_shape(model.init, ...)``.

  Returns:
    The total number of elements, a Python ``int``.

  >>> count_params({"dense": {"kernel": jnp.zeros((3, 4)), "bias": jnp.zeros(4)}})
  16
  """
  total = 0
  for leaf in jax.tree_util.tree_leaves(params):
    if not hasattr(leaf, "shape"):
      raise TypeError(f"`params` leaves must be arrays, got a {type(leaf).__name__}.")
    total += math.prod(int(d) for d in leaf.shape)
  return total


def _check_images(x: Any, min_size: int) -> jax.Array:
  x = _checks.array(x)
  if x.ndim != 4:
    raise ValueError(f"`x` must have shape [B, H, W, C], got shape {tuple(x.shape)}.")
  if not jnp.issubdtype(x.dtype, jnp.floating):
    raise TypeError(f"`x` must be a floating-point array (images in [0, 1]), got dtype "
                    f"{x.dtype}.")
  if x.shape[1] < min_size or x.shape[2] < min_size:
    raise ValueError(f"`x` must be at least {min_size} x {min_size} pixels for this trunk "
                     f"(one halving per max pool), got {x.shape[1]} x {x.shape[2]}.")
  return x


def _max_pool_2x2(x: jax.Array) -> jax.Array:
  """``nn.max_pool(x, (2, 2), strides=(2, 2), padding="VALID")`` as a reshape and a max.

  Same values (odd sizes are floored); a faster gradient on XLA:CPU, where ``reduce_window``'s
  gradient (``select_and_scatter_add``) is expanded into index ``iota``s, a tuple
  ``reduce_window`` and a ``scatter`` that took ~70% of the ``IICFastCPU`` training step
  (``benchmarks/TRAINING_STEPS.md``). The reduction's gradient splits a tie between equal
  maxima evenly instead of routing it to the first; after a ReLU the only likely ties are
  zeros, whose gradient the ReLU zeroes anyway.
  """
  b, h, w, c = x.shape
  h2, w2 = h // 2, w // 2
  x = x[:, :2 * h2, :2 * w2, :].reshape(b, h2, 2, w2, 2, c)
  return jnp.max(x, axis=(2, 4))


class IICTrunk(nn.Module):
  """A VGG-style encoder: ``[Conv -> BN -> ReLU] (-> MaxPool)`` per width, then flatten.

  Attributes:
    widths: output channels of the convs, in order; a ``2 x 2`` max pool sits between
      consecutive convs (cfg "F" ``[64, M, 128, M, 256, M, 512]`` is ``(64, 128, 256, 512)``).
    kernel_size: side of the square conv kernels (3 in the book, 5 in the paper).
    final_pool: also max-pool after the last conv.
    pooling: ``"flatten"`` the last feature map (the references) or ``"mean"`` over space.
    dense_features: if set, a ``Dense(dense_features) -> ReLU`` after the pooling.
    use_bias: conv bias (Keras' default, kept by the book; the paper's convs have none).
    bn_momentum: BatchNorm running-average decay (Keras 0.99; PyTorch's 0.1 is 0.9 here).
    bn_epsilon: BatchNorm epsilon (Keras 1e-3, PyTorch 1e-5).
    conv_init: conv kernel initializer.
    dtype: computation dtype.
    param_dtype: parameter dtype.

  Call ``trunk(x, train=...)`` with ``x: [B, H, W, C]`` floats; returns ``[B, D]`` features in
  ``dtype``.

  >>> trunk = TinyTrunk()
  >>> x = jnp.zeros((2, 8, 8, 1))
  >>> variables = trunk.init(jax.random.key(0), x, train=False)
  >>> trunk.apply(variables, x, train=False).shape  # 8 -> 4 after one pool; 4 * 4 * 8
  (2, 128)
  """

  widths: Sequence[int] = (64, 128, 256, 512)
  kernel_size: int = 3
  final_pool: bool = False
  pooling: Literal["flatten", "mean"] = "flatten"
  dense_features: int | None = None
  use_bias: bool = True
  bn_momentum: float = 0.99
  bn_epsilon: float = 1e-3
  conv_init: Initializer = nn.initializers.he_normal()
  dtype: Dtype = jnp.float32
  param_dtype: Dtype = jnp.float32

  @property
  def num_pools(self) -> int:
    return len(self.widths) - 1 + int(self.final_pool)

  def _validate(self) -> None:
    if isinstance(self.widths, (str, bytes)) or not isinstance(self.widths, Sequence):
      raise TypeError(f"`widths` must be a sequence of ints, got {self.widths!r}.")
    if not self.widths:
      raise ValueError("`widths` must not be empty.")
    for w in self.widths:
      _checks.check_int(w, "widths", minimum=1)
    _checks.check_int(self.kernel_size, "kernel_size", minimum=1)
    _checks.check_choice(self.pooling, "pooling", _POOLINGS)
    if self.dense_features is not None:
      _checks.check_int(self.dense_features, "dense_features", minimum=1)
    _checks.check_unit_interval(self.bn_momentum, "bn_momentum")
    _checks.check_positive(self.bn_epsilon, "bn_epsilon")

  @nn.compact
  def __call__(self, x: jax.typing.ArrayLike, *, train: bool) -> jax.Array:
    self._validate()
    x = _check_images(x, 2 ** self.num_pools).astype(self.dtype)
    k = self.kernel_size
    for i, width in enumerate(self.widths):
      if i > 0:
        x = _max_pool_2x2(x)
      x = nn.Conv(width, (k, k), padding="SAME", use_bias=self.use_bias,
                  kernel_init=self.conv_init, dtype=self.dtype,
                  param_dtype=self.param_dtype, name=f"conv{i}")(x)
      x = nn.BatchNorm(use_running_average=not train, momentum=self.bn_momentum,
                       epsilon=self.bn_epsilon, dtype=self.dtype,
                       param_dtype=self.param_dtype, name=f"bn{i}")(x)
      x = nn.relu(x)
    if self.final_pool:
      x = _max_pool_2x2(x)
    if self.pooling == "flatten":
      x = x.reshape(x.shape[0], -1)
    else:
      x = jnp.mean(x, axis=(1, 2))
    if self.dense_features is not None:
      x = nn.Dense(self.dense_features, dtype=self.dtype, param_dtype=self.param_dtype,
                   name="dense")(x)
      x = nn.relu(x)
    return x


class _SubHeads(nn.Module):
  """``num_heads`` independent ``Dense(features)`` layers on the same input: ``[H, B, F]``.

  Parameters are stacked on a leading head axis (``kernel: [H, D, F]``, ``bias: [H, F]``),
  each head initialised from its own key, so the heads are independent but a loss can be
  ``vmap``-ed over them.
  """

  num_heads: int
  features: int
  kernel_init: Initializer
  dtype: Dtype
  param_dtype: Dtype

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    heads = nn.vmap(nn.Dense, variable_axes={"params": 0}, split_rngs={"params": True},
                    in_axes=None, out_axes=0, axis_size=self.num_heads)
    return heads(self.features, kernel_init=self.kernel_init, dtype=self.dtype,
                 param_dtype=self.param_dtype, name="dense")(x)


class IICModel(nn.Module):
  """An IIC network: an :class:`IICTrunk` and two groups of softmax sub-heads sharing it.

  Attributes:
    num_heads: ``k``, the number of main sub-heads.
    num_clusters: ``C``, clusters per main sub-head (10 for MNIST).
    num_overcluster_heads: overclustering sub-heads; ``None`` means ``num_heads``, ``0``
      disables them (then ``"overclusters"`` is an empty ``[0, B, C_over]`` array).
    num_overclusters: ``C_over``, clusters per overclustering sub-head (50 in the paper).
    widths, kernel_size, final_pool, pooling, dense_features, use_bias, bn_momentum,
      bn_epsilon, conv_init: the trunk's, see :class:`IICTrunk`.
    head_init: initializer of each sub-head's ``[D, C]`` kernel.
    dtype: computation dtype (the softmax is always float32).
    param_dtype: parameter dtype.

  ``model(x, train=...)`` with ``x: [B, H, W, C]`` images in ``[0, 1]`` returns a dict:

  * ``"clusters"``: ``[num_heads, B, num_clusters]`` float32 probabilities (rows sum to 1);
  * ``"overclusters"``: ``[num_overcluster_heads, B, num_overclusters]`` float32
    probabilities;
  * ``"features"``: ``[B, D]`` trunk features, in ``dtype``.

  Parameters: ``{"trunk": ..., "clusters": {"dense": {"kernel": [H, D, C], "bias": [H, C]}},
  "overclusters": ...}``; BatchNorm statistics live in ``batch_stats``.

  >>> model = IICTiny()
  >>> x = jnp.zeros((3, 8, 8, 1))
  >>> variables = model.init(jax.random.key(0), x, train=False)
  >>> out, updates = model.apply(variables, x, train=True, mutable=["batch_stats"])
  >>> {k: v.shape for k, v in out.items()}
  {'clusters': (2, 3, 10), 'overclusters': (2, 3, 20), 'features': (3, 128)}
  >>> bool(jnp.allclose(out["clusters"].sum(-1), 1.0))
  True
  """

  num_heads: int = 5
  num_clusters: int = 10
  num_overcluster_heads: int | None = None
  num_overclusters: int = 50
  widths: Sequence[int] = (64, 128, 256, 512)
  kernel_size: int = 3
  final_pool: bool = False
  pooling: Literal["flatten", "mean"] = "flatten"
  dense_features: int | None = None
  use_bias: bool = True
  bn_momentum: float = 0.99
  bn_epsilon: float = 1e-3
  conv_init: Initializer = nn.initializers.he_normal()
  head_init: Initializer = nn.initializers.glorot_uniform()
  dtype: Dtype = jnp.float32
  param_dtype: Dtype = jnp.float32

  @property
  def overcluster_heads(self) -> int:
    """The number of overclustering sub-heads (``num_heads`` when the field is ``None``)."""
    if self.num_overcluster_heads is None:
      return self.num_heads
    return self.num_overcluster_heads

  def _validate(self) -> None:
    _checks.check_int(self.num_heads, "num_heads", minimum=1)
    _checks.check_int(self.num_clusters, "num_clusters", minimum=1)
    if self.num_overcluster_heads is not None:
      _checks.check_int(self.num_overcluster_heads, "num_overcluster_heads", minimum=0)
    _checks.check_int(self.num_overclusters, "num_overclusters", minimum=1)

  def _heads(self, features: jax.Array, num_heads: int, num_clusters: int,
             name: str) -> jax.Array:
    if num_heads == 0:
      return jnp.zeros((0, features.shape[0], num_clusters), jnp.float32)
    logits = _SubHeads(num_heads, num_clusters, kernel_init=self.head_init, dtype=self.dtype,
                       param_dtype=self.param_dtype, name=name)(features)
    return jax.nn.softmax(logits.astype(jnp.float32), axis=-1)

  @nn.compact
  def __call__(self, x: jax.typing.ArrayLike, *, train: bool) -> dict[str, jax.Array]:
    self._validate()
    features = IICTrunk(
        widths=self.widths, kernel_size=self.kernel_size, final_pool=self.final_pool,
        pooling=self.pooling, dense_features=self.dense_features, use_bias=self.use_bias,
        bn_momentum=self.bn_momentum, bn_epsilon=self.bn_epsilon, conv_init=self.conv_init,
        dtype=self.dtype, param_dtype=self.param_dtype, name="trunk")(x, train=train)
    return {
        "clusters": self._heads(features, self.num_heads, self.num_clusters, "clusters"),
        "overclusters": self._heads(features, self.overcluster_heads, self.num_overclusters,
                                    "overclusters"),
        "features": features,
    }


# ---------------------------------------------------------------------------------------------
# Variants. Each is a set of trunk fields, usable for the trunk alone or for the whole model.

# The book's ``vgg.cfg["F"]`` with ``make_layers(batch_norm=True)``: Keras Conv2D (bias on,
# He-normal) + BatchNormalization (Keras defaults) + ReLU; the IIC script then flattens.
_BOOK_VGG = dict(widths=(64, 128, 256, 512), kernel_size=3, use_bias=True, bn_momentum=0.99,
                 bn_epsilon=1e-3)

# xu-ji/IIC's ClusterNet6c trunk: 5 x 5 convs without bias, PyTorch BatchNorm defaults,
# Kaiming-normal (fan-in) init; flattened (3 x 3 x 512 on 24 x 24 crops).
_PAPER_5X5 = dict(widths=(64, 128, 256, 512), kernel_size=5, use_bias=False, bn_momentum=0.9,
                  bn_epsilon=1e-5,
                  conv_init=nn.initializers.variance_scaling(2.0, "fan_in", "normal"))

# A seed-style small conv net: Conv3x3 32 -> 64 -> 128, each with BN + ReLU and a 2 x 2 max
# pool, flatten, then ``Dense(128) -> ReLU``.
_SEED_004 = dict(widths=(32, 64, 128), kernel_size=3, final_pool=True, dense_features=128)

# A quarter-width cfg "F" (16-32-64-128): the 2-core prototype in REFERENCES.md.
_FAST_CPU = dict(widths=(16, 32, 64, 128), kernel_size=3)

# For tests: two convs; 8 x 8 inputs give 4 x 4 x 8 = 128 features.
_TINY = dict(widths=(4, 8), kernel_size=3)

BookVGGTrunk = functools.partial(IICTrunk, **_BOOK_VGG)
Paper5x5Trunk = functools.partial(IICTrunk, **_PAPER_5X5)
Seed004Trunk = functools.partial(IICTrunk, **_SEED_004)
FastCPUTrunk = functools.partial(IICTrunk, **_FAST_CPU)
TinyTrunk = functools.partial(IICTrunk, **_TINY)

# The book's trunk with the default heads (5 of 10, 5 of 50). The book itself trains 1 to 3
# heads of 10 and no overclustering: ``IICBookVGG(num_heads=1, num_overcluster_heads=0)``.
IICBookVGG = functools.partial(IICModel, **_BOOK_VGG)
# The paper's MNIST network: 5 sub-heads of 10 and 5 overclustering sub-heads of 50, head
# kernels N(0, 0.01).
IICPaper5x5 = functools.partial(IICModel, **_PAPER_5X5, num_heads=5, num_overclusters=50,
                                head_init=nn.initializers.normal(0.01))
IICSeed004 = functools.partial(IICModel, **_SEED_004)
IICFastCPU = functools.partial(IICModel, **_FAST_CPU)
# For tests: 2 sub-heads of 10 and 2 of 20.
IICTiny = functools.partial(IICModel, **_TINY, num_heads=2, num_overclusters=20)
