"""MINE statistics networks ``T(x, y)`` (Belghazi et al., ICML 2018; Atienza ch. 13).

MINE estimates the mutual information of ``x`` and ``y`` with the Donsker-Varadhan bound
``I(X; Y) >= E_joint[T(x, y)] - log E_marginal[exp T(x, y)]``, maximised over a network ``T``
that maps a pair to one scalar. The bound itself lives with the losses (``jaxvision.ops``);
this module holds the networks:

* :class:`MineStatisticsNetwork`: the book's ``T``: ``Dense(hidden)`` on ``x`` plus
  ``Dense(hidden)`` on ``y``, ReLU, ``Dense(1)``. ``hidden=16`` for the bivariate Gaussian,
  ``hidden=1024`` on the image encoder's latent codes.
* :class:`MineMLP`: a general ``T`` for image features: concatenate the flattened ``x`` and
  ``y``, then ``Dense -> ReLU`` per hidden layer, then ``Dense(1)``.
* :class:`MineEncoder`: the book's image encoder for MINE clustering: an IIC trunk (the
  book's VGG cfg "F" by default), flattened, then a linear ``Dense(latent_dim)``.

Every ``T`` returns ``[B]`` float32 values (computed in ``dtype``, cast to float32 so the
``log-mean-exp`` of the bound is taken in float32).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxvision.models import iic
from jaxvision import _checks

__all__ = ["MineStatisticsNetwork", "MineMLP", "MineEncoder"]

Dtype = Any


def _as_rows(v: Any, name: str) -> jax.Array:
  """``v`` as ``[B, D]``: ``[B]`` becomes ``[B, 1]``, ``[B, ...]`` is flattened."""
  v = _checks.array(v)
  if v.ndim == 0:
    raise ValueError(f"`{name}` must have shape [B] or [B, ...], got a scalar.")
  if not jnp.issubdtype(v.dtype, jnp.floating):
    raise TypeError(f"`{name}` must be a floating-point array, got dtype {v.dtype}.")
  return v.reshape(v.shape[0], -1)


def _as_pair(x: Any, y: Any) -> tuple[jax.Array, jax.Array]:
  x, y = _as_rows(x, "x"), _as_rows(y, "y")
  if x.shape[0] != y.shape[0]:
    raise ValueError(f"`x` and `y` must have the same batch size, got {x.shape[0]} and "
                     f"{y.shape[0]}.")
  return x, y


class MineStatisticsNetwork(nn.Module):
  """The book's MINE network ``T(x, y) = Dense(1)(relu(Dense(hidden)(x) + Dense(hidden)(y)))``.

  Attributes:
    hidden: width of the two input projections (16 in the book's Gaussian example).
    dtype: computation dtype.
    param_dtype: parameter dtype.

  Call ``T(x, y)`` with ``x: [B]`` or ``[B, Dx]`` and ``y: [B]`` or ``[B, Dy]``
  (more trailing dimensions are flattened); returns ``[B]`` float32.

  >>> t = MineStatisticsNetwork(hidden=16)
  >>> x, y = jnp.zeros(5), jnp.ones(5)
  >>> params = t.init(jax.random.key(0), x, y)
  >>> t.apply(params, x, y).shape
  (5,)
  """

  hidden: int = 16
  dtype: Dtype = jnp.float32
  param_dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(self, x: jax.typing.ArrayLike, y: jax.typing.ArrayLike) -> jax.Array:
    _checks.check_int(self.hidden, "hidden", minimum=1)
    x, y = _as_pair(x, y)
    dense = lambda n, name: nn.Dense(n, dtype=self.dtype, param_dtype=self.param_dtype,
                                     name=name)
    h = dense(self.hidden, "x_dense")(x) + dense(self.hidden, "y_dense")(y)
    t = dense(1, "out")(nn.relu(h))
    return t[:, 0].astype(jnp.float32)


class MineMLP(nn.Module):
  """A general MINE network on features: ``concat(x, y) -> [Dense -> ReLU] * L -> Dense(1)``.

  Attributes:
    hidden_layers: widths of the hidden layers (may be empty: then ``T`` is linear).
    dtype: computation dtype.
    param_dtype: parameter dtype.

  Call ``T(x, y)`` with ``x: [B, ...]`` and ``y: [B, ...]`` (flattened per row, ``[B]`` is
  ``[B, 1]``); returns ``[B]`` float32.

  >>> t = MineMLP(hidden_layers=(32, 32))
  >>> x, y = jnp.zeros((4, 10)), jnp.zeros((4, 3, 3))
  >>> params = t.init(jax.random.key(0), x, y)
  >>> t.apply(params, x, y).shape
  (4,)
  """

  hidden_layers: Sequence[int] = (512, 512)
  dtype: Dtype = jnp.float32
  param_dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(self, x: jax.typing.ArrayLike, y: jax.typing.ArrayLike) -> jax.Array:
    if isinstance(self.hidden_layers, (str, bytes)) or not isinstance(self.hidden_layers,
                                                                        Sequence):
      raise TypeError(f"`hidden_layers` must be a sequence of ints, got "
                      f"{self.hidden_layers!r}.")
    for width in self.hidden_layers:
      _checks.check_int(width, "hidden_layers", minimum=1)
    x, y = _as_pair(x, y)
    h = jnp.concatenate([x.astype(self.dtype), y.astype(self.dtype)], axis=-1)
    for i, width in enumerate(self.hidden_layers):
      h = nn.Dense(width, dtype=self.dtype, param_dtype=self.param_dtype, name=f"dense{i}")(h)
      h = nn.relu(h)
    t = nn.Dense(1, dtype=self.dtype, param_dtype=self.param_dtype, name="out")(h)
    return t[:, 0].astype(jnp.float32)


class MineEncoder(nn.Module):
  """The book's MINE image encoder: an IIC trunk, then a linear ``Dense(latent_dim)``.

  Attributes:
    latent_dim: size of the code (the book's ``--latent-dim``, 10 by default).
    trunk: a callable building the :class:`~jaxvision.models.iic.IICTrunk` (e.g.
      ``iic.BookVGGTrunk``, the default, or ``iic.TinyTrunk``); it receives ``dtype``,
      ``param_dtype`` and ``name``.
    dtype: computation dtype.
    param_dtype: parameter dtype.

  Call ``encoder(x, train=...)`` with ``x: [B, H, W, C]``; returns ``[B, latent_dim]`` in
  ``dtype``. BatchNorm statistics are in ``batch_stats`` (``mutable`` when training).

  >>> enc = MineEncoder(latent_dim=4, trunk=iic.TinyTrunk)
  >>> x = jnp.zeros((2, 8, 8, 1))
  >>> variables = enc.init(jax.random.key(0), x, train=False)
  >>> enc.apply(variables, x, train=False).shape
  (2, 4)
  """

  latent_dim: int = 10
  trunk: Callable[..., nn.Module] = iic.BookVGGTrunk
  dtype: Dtype = jnp.float32
  param_dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(self, x: jax.typing.ArrayLike, *, train: bool) -> jax.Array:
    _checks.check_int(self.latent_dim, "latent_dim", minimum=1)
    features = self.trunk(dtype=self.dtype, param_dtype=self.param_dtype,
                          name="trunk")(x, train=train)
    return nn.Dense(self.latent_dim, dtype=self.dtype, param_dtype=self.param_dtype,
                    name="latent")(features)
