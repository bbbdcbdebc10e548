"""WaveNet-style stacks of dilated causal 1-D convolutions (van den Oord et al. 2016; the TCN
of Bai et al. 2018), for classification of sequences and autoregressive generation.

A block with kernel ``k`` and dilation ``d`` reads its input ``h`` at times ``t, t - d, ...,
t - (k-1) d`` (left zero padding of ``(k-1) d``: no output depends on a later input), forms
a gated unit ``tanh(f) * sigmoid(g)``, adds a 1 x 1 projection of it to ``h`` (residual) and
sends another to the skip sum. The receptive field of a stack is ``1 + (k-1) * sum(d)``.

Two ways to run the same parameters:

* :meth:`WaveNet.__call__` computes every time step (training a generator with teacher
  forcing, or inspecting a classifier's outputs over time);
* ``last_step_only=True`` computes only what the final time step depends on. With
  ``k = 2`` and dilations ``1, 2, 4, ...`` that is half the positions at each layer (a stride-2
  tree): about ``2 T`` positions in all instead of ``T * layers`` -- the sequence classifier's
  cost. Both give the same final output (tested).

:func:`sample` generates autoregressively with a per-layer cache of the past inputs each
block reads, so each new sample costs O(layers), not a recomputation of the sequence.

mu-law companding (``mu_law_encode`` / ``mu_law_decode``) maps audio in ``[-1, 1]`` to 256
classes as in the paper.
"""

from __future__ import annotations

import functools
from typing import Any, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

__all__ = ["mu_law_encode", "mu_law_decode", "receptive_field", "needed_positions",
           "GatedBlock", "WaveNet", "WaveNetTiny", "SeqMnistTCN", "SeqMnistTCNTiny",
           "init_cache", "sample"]


def mu_law_encode(x: Any, mu: int = 255) -> jax.Array:
  """Audio in ``[-1, 1]`` (clipped) -> integer classes ``0 .. mu``:
  ``F(x) = sign(x) ln(1 + mu |x|) / ln(1 + mu)`` quantised uniformly."""
  if int(mu) < 1:
    raise ValueError(f"`mu` must be >= 1, got {mu!r}.")
  x = jnp.clip(jnp.asarray(x, jnp.float32), -1.0, 1.0)
  f = jnp.sign(x) * jnp.log1p(mu * jnp.abs(x)) / np.log1p(mu)
  return jnp.clip(jnp.floor((f + 1.0) / 2.0 * mu + 0.5), 0, mu).astype(jnp.int32)


def mu_law_decode(q: Any, mu: int = 255) -> jax.Array:
  """Classes ``0 .. mu`` -> audio in ``[-1, 1]`` (the inverse of :func:`mu_law_encode` up to
  its quantisation)."""
  if int(mu) < 1:
    raise ValueError(f"`mu` must be >= 1, got {mu!r}.")
  f = 2.0 * jnp.asarray(q, jnp.float32) / mu - 1.0
  return jnp.sign(f) * jnp.expm1(jnp.abs(f) * np.log1p(mu)) / mu


def receptive_field(kernel_size: int, dilations: Sequence[int]) -> int:
  """``1 + (k - 1) * sum(dilations)``: how many past inputs (the current one included) an
  output of the stack can depend on."""
  return 1 + (int(kernel_size) - 1) * int(sum(int(d) for d in dilations))


@functools.lru_cache(maxsize=64)
def needed_positions(length: int, kernel_size: int, dilations: tuple[int, ...]):
  """For ``last_step_only``: per layer ``l``, the sorted times ``P_l`` of the layer's input
  that the final output depends on, and for each tap ``j`` the index into ``P_l`` of
  ``P_{l+1} - j d_l`` (-1 where that time is before the start: zero padding).
  Returns ``(positions, taps)`` lists of NumPy arrays (``positions[L] = [length - 1]``)."""
  k = int(kernel_size)
  pos = [np.asarray([length - 1])]
  for d in reversed(dilations):
    nxt = pos[0]
    cand = np.unique(np.concatenate([nxt - j * d for j in range(k)]))
    pos.insert(0, cand[cand >= 0])
  taps = []
  for l, d in enumerate(dilations):
    lookup = {int(t): i for i, t in enumerate(pos[l])}
    taps.append(np.asarray([[lookup.get(int(t) - j * d, -1) for t in pos[l + 1]]
                            for j in range(k)], np.int32))
  return pos, taps


class GatedBlock(nn.Module):
  """One residual block. Parameters: ``kernel [k, C, 2C]`` (filter and gate halves),
  ``bias [2C]``, ``residual`` and ``skip`` 1 x 1 projections.

  ``__call__(h)`` on ``h [B, T, C]`` returns ``(h + residual, skip)``, both ``[B, T, ...]``.
  ``taps(xs)`` takes the ``k`` tap inputs ``[x(t), x(t-d), ...]`` already gathered and returns
  ``(z, residual(z))`` where ``z`` is the gated unit (used by the last-step path and the
  sampler: the same parameters, no convolution).
  """

  channels: int
  skip_channels: int
  kernel_size: int = 2
  dilation: int = 1

  def setup(self):
    c = self.channels
    self.kernel = self.param("kernel", nn.initializers.lecun_normal(in_axis=(0, 1)),
                             (self.kernel_size, c, 2 * c))
    self.bias = self.param("bias", nn.initializers.zeros, (2 * c,))
    self.residual = nn.Dense(c, name="residual")
    self.skip = nn.Dense(self.skip_channels, name="skip")

  def gated(self, xs: Sequence[jax.Array]) -> jax.Array:
    """``xs[j]``: the input at ``t - j d``, any leading shape, last axis C."""
    a = self.bias
    for j, x in enumerate(xs):
      a = a + x @ self.kernel[j]
    f, g = jnp.split(a, 2, axis=-1)
    return jnp.tanh(f) * jax.nn.sigmoid(g)

  def shifted(self, h: jax.Array) -> list[jax.Array]:
    """``[h(t), h(t - d), ..., h(t - (k-1) d)]`` with zeros before the start (causal)."""
    t = h.shape[1]
    out = [h]
    for j in range(1, self.kernel_size):
      s = j * self.dilation
      out.append(jnp.pad(h, ((0, 0), (s, 0), (0, 0)))[:, :t] if s < t else jnp.zeros_like(h))
    return out

  def __call__(self, h: jax.Array):
    z = self.gated(self.shifted(h))
    return h + self.residual(z), self.skip(z)


class WaveNet(nn.Module):
  """A stack of :class:`GatedBlock` over an input projection, and a ReLU head on the sum of
  skips.

  Attributes:
    num_classes: outputs per time step (256 for mu-law audio, 10 for a digit).
    channels / skip_channels / head_channels: widths of the residual stream, the skip sum and
      the head's hidden layer.
    kernel_size: ``k`` of every block.
    dilations: one block per entry (e.g. ``(1, 2, ..., 512)``, repeated for more stacks).
    input_classes: with an int, inputs are class indices embedded into ``channels`` (audio);
      with None, inputs are ``[B, T, F]`` floats projected by a dense layer.

  ``__call__(x, train=False, last_step_only=False)``: ``x [B, T]`` ints or ``[B, T, F]``
  floats -> ``[B, T, num_classes]`` logits, or ``[B, num_classes]`` for the final step only.
  Output ``t`` depends on inputs ``<= t`` only; to predict the next sample train output ``t``
  against input ``t + 1``.
  """

  num_classes: int = 256
  channels: int = 32
  skip_channels: int = 64
  head_channels: int = 64
  kernel_size: int = 2
  dilations: Sequence[int] = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512)
  input_classes: int | None = 256

  def setup(self):
    if self.input_classes is not None:
      self.embed = nn.Embed(self.input_classes, self.channels, name="embed")
    else:
      self.embed = nn.Dense(self.channels, name="embed")
    self.blocks = [GatedBlock(self.channels, self.skip_channels, self.kernel_size, int(d),
                              name=f"block{i}") for i, d in enumerate(self.dilations)]
    self.head_hidden = nn.Dense(self.head_channels, name="head_hidden")
    self.head_out = nn.Dense(self.num_classes, name="head_out")

  @property
  def receptive_field(self) -> int:
    return receptive_field(self.kernel_size, self.dilations)

  def _inputs(self, x):
    if self.input_classes is not None:
      if not jnp.issubdtype(jnp.asarray(x).dtype, jnp.integer):
        raise TypeError("WaveNet with `input_classes` takes integer class inputs [B, T].")
      return self.embed(x)
    x = jnp.asarray(x, jnp.float32)
    if x.ndim == 2:
      x = x[..., None]
    return self.embed(x)

  def head(self, skips: jax.Array) -> jax.Array:
    return self.head_out(nn.relu(self.head_hidden(nn.relu(skips))))

  def __call__(self, x, train: bool = False, last_step_only: bool = False):
    del train
    h = self._inputs(x)
    if last_step_only:
      return self._last_step(h)
    total = 0.0
    for block in self.blocks:
      h, s = block(h)
      total = total + s
    return self.head(total)

  def _last_step(self, h):
    b, t, c = h.shape
    positions, taps = needed_positions(t, self.kernel_size, tuple(int(d) for d in
                                                                  self.dilations))
    h = h[:, positions[0]]                                   # [B, |P_0|, C]
    total = 0.0
    for l, block in enumerate(self.blocks):
      padded = jnp.concatenate([h, jnp.zeros((b, 1, c), h.dtype)], axis=1)  # index -1: zero
      xs = [padded[:, taps[l][j]] for j in range(self.kernel_size)]
      z = block.gated(xs)
      h = xs[0] + block.residual(z)                           # at P_{l+1}
      total = total + block.skip(z[:, -1])                    # the final time only
    return self.head(total)

  # -- incremental evaluation (the sampler) -------------------------------------------------

  def step(self, x_t, cache):
    """One time step: ``x_t`` ``[B]`` ints (or ``[B, F]`` floats) and the cache of
    :func:`init_cache` -> ``(logits [B, num_classes], new cache)``."""
    h = self._inputs(x_t[:, None])[:, 0]
    new_cache = []
    total = 0.0
    for block, (buf, pos) in zip(self.blocks, cache):
      span = buf.shape[1]          # (k - 1) * d
      d = block.dilation
      xs = [h] + [buf[:, (pos - j * d) % span] for j in range(1, self.kernel_size)]
      z = block.gated(xs)
      buf = buf.at[:, pos % span].set(h)
      new_cache.append((buf, (pos + 1) % span))
      h = h + block.residual(z)
      total = total + block.skip(z)
    return self.head(total), new_cache


WaveNetTiny = functools.partial(WaveNet, channels=8, skip_channels=8, head_channels=8,
                                dilations=(1, 2, 4, 8))


def init_cache(model: WaveNet, batch: int, dtype=jnp.float32):
  """Zero caches (a clean past) for :meth:`WaveNet.step`: per block a ring buffer
  ``[B, (k-1) d, C]`` of its past inputs and the write position."""
  return [(jnp.zeros((batch, (model.kernel_size - 1) * int(d), model.channels), dtype),
           jnp.zeros((), jnp.int32)) for d in model.dilations]


def sample(model: WaveNet, variables, rng: jax.Array, *, length: int, batch: int = 1,
           temperature: float = 1.0, first: Any = None) -> jax.Array:
  """``[batch, length]`` class indices drawn one at a time from ``softmax(logits / T)``, each
  fed back as the next input (a ``lax.scan`` over :meth:`WaveNet.step`). ``first``: the
  initial input class (default the middle class: silence for mu-law audio);
  ``temperature=0`` takes the arg-max."""
  if model.input_classes is None:
    raise ValueError("`sample` needs a WaveNet over class inputs (`input_classes`).")
  if int(length) < 1 or int(batch) < 1:
    raise ValueError(f"`length` and `batch` must be >= 1, got {length!r}, {batch!r}.")
  if temperature < 0:
    raise ValueError(f"`temperature` must be >= 0, got {temperature!r}.")
  start = jnp.full((batch,), model.input_classes // 2 if first is None else first, jnp.int32)
  cache = init_cache(model, batch)

  def body(carry, key):
    x, cache = carry
    logits, cache = model.apply(variables, x, cache, method=WaveNet.step)
    if temperature == 0:
      nxt = jnp.argmax(logits, -1).astype(jnp.int32)
    else:
      nxt = jax.random.categorical(key, logits / temperature).astype(jnp.int32)
    return (nxt, cache), nxt

  _, out = jax.lax.scan(body, (start, cache), jax.random.split(rng, int(length)))
  return out.T


class SeqMnistTCN(nn.Module):
  """Sequential MNIST: the image read one pixel at a time (784 steps, row by row) by a
  :class:`WaveNet` stack whose final step's output classifies the digit. Called like the
  library's image classifiers, ``model(images [B, 28, 28, 1], train)`` -> logits ``[B, 10]``;
  only the final step's dependencies are computed (``last_step_only``)."""

  num_classes: int = 10
  channels: int = 32
  skip_channels: int = 64
  head_channels: int = 64
  kernel_size: int = 2
  dilations: Sequence[int] = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512)

  def setup(self):
    self.net = WaveNet(num_classes=self.num_classes, channels=self.channels,
                       skip_channels=self.skip_channels, head_channels=self.head_channels,
                       kernel_size=self.kernel_size, dilations=tuple(self.dilations),
                       input_classes=None, name="wavenet")

  def __call__(self, images, train: bool = False, all_steps: bool = False):
    b = images.shape[0]
    seq = jnp.reshape(jnp.asarray(images, jnp.float32), (b, -1, 1)) - 0.5
    if all_steps:
      return self.net(seq, train=train)                      # [B, 784, K] every step
    return self.net(seq, train=train, last_step_only=True)


SeqMnistTCNTiny = functools.partial(SeqMnistTCN, channels=8, skip_channels=8, head_channels=8,
                                    dilations=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512))
