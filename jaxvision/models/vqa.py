"""Visual question answering models: ``model(image [B, H, W, 3], question [B, L] ids, train)``
-> answer logits ``[B, K]``.

* :class:`VQANet`: a CNN image code and an LSTM question code (``nn.RNN``), concatenated and
  classified by an MLP (the survey's CNN + LSTM sketch).
* :class:`QuestionOnly`: the LSTM and the MLP without the image -- what the language prior
  alone answers.
* :class:`RelationNet` (Santoro et al. 2017): the CNN's ``G x G`` cells with their
  coordinates are the objects; an MLP ``g`` scores every ordered pair of objects together with
  the question, the pair codes are summed (averaged), and an MLP ``f`` answers. The first layer of ``g``
  is linear in the concatenation ``[o_i, o_j, q]``, so it is computed once per object and
  broadcast over pairs (the same function, ``G^2`` instead of ``G^4`` products).
"""

from __future__ import annotations

import functools

import flax.linen as nn
import jax.numpy as jnp

__all__ = ["QuestionEncoder", "VQANet", "QuestionOnly", "RelationNet", "VQANetTiny",
           "QuestionOnlyTiny", "RelationNetTiny"]


class QuestionEncoder(nn.Module):
  vocab_size: int
  embed_dim: int = 32
  hidden: int = 128

  @nn.compact
  def __call__(self, question):
    mask = question > 0
    x = nn.Embed(self.vocab_size, self.embed_dim, name="embed")(question)
    lengths = jnp.maximum(jnp.sum(mask, axis=1), 1)
    # The state after the last real word (padding is at the end).
    return nn.RNN(nn.OptimizedLSTMCell(self.hidden), name="lstm")(x, seq_lengths=lengths)[
        jnp.arange(question.shape[0]), lengths - 1]


class _ImageCNN(nn.Module):
  """``stages`` stride-2 3 x 3 convolutions; ``full_resolution=True`` puts a stride-1
  convolution first (MNIST strokes are 1-2 px wide in a 14-px digit: a first stride-2 layer
  sees them aliased)."""

  width: int = 32
  stages: int = 3
  full_resolution: bool = False

  @nn.compact
  def __call__(self, x):
    if self.full_resolution:
      x = nn.relu(nn.Conv(self.width // 2, (3, 3), name="conv_full")(x))
    for i in range(self.stages):
      x = nn.relu(nn.Conv(self.width * min(2, i + 1), (3, 3), strides=2, name=f"conv{i}")(x))
    return x


class VQANet(nn.Module):
  num_classes: int
  vocab_size: int = 32
  width: int = 32
  hidden: int = 128
  fused: int = 256
  full_resolution: bool = False

  @nn.compact
  def __call__(self, image, question, train: bool = False):
    del train
    f = _ImageCNN(self.width, full_resolution=self.full_resolution, name="cnn")(image)
    v = nn.relu(nn.Dense(self.fused, name="image_code")(f.reshape(f.shape[0], -1)))
    q = QuestionEncoder(self.vocab_size, hidden=self.hidden, name="question")(question)
    h = nn.relu(nn.Dense(self.fused, name="fuse")(jnp.concatenate([v, q], -1)))
    return nn.Dense(self.num_classes, name="answer")(h)


class QuestionOnly(nn.Module):
  num_classes: int
  vocab_size: int = 32
  hidden: int = 128
  fused: int = 256

  @nn.compact
  def __call__(self, image, question, train: bool = False):
    del image, train
    q = QuestionEncoder(self.vocab_size, hidden=self.hidden, name="question")(question)
    h = nn.relu(nn.Dense(self.fused, name="fuse")(q))
    return nn.Dense(self.num_classes, name="answer")(h)


class RelationNet(nn.Module):
  num_classes: int
  vocab_size: int = 32
  width: int = 32
  hidden: int = 128
  g_width: int = 128
  f_width: int = 256
  stages: int = 4
  full_resolution: bool = False

  @nn.compact
  def __call__(self, image, question, train: bool = False):
    del train
    f = _ImageCNN(self.width, self.stages, self.full_resolution, name="cnn")(image)  # [B,G,G,C]
    b, gh, gw, c = f.shape
    yy, xx = jnp.meshgrid(jnp.linspace(-1, 1, gh), jnp.linspace(-1, 1, gw), indexing="ij")
    coords = jnp.broadcast_to(jnp.stack([yy, xx], -1), (b, gh, gw, 2))
    objects = jnp.concatenate([f, coords], -1).reshape(b, gh * gw, c + 2)
    q = QuestionEncoder(self.vocab_size, hidden=self.hidden, name="question")(question)
    # g's first layer on [o_i, o_j, q] = A o_i + B o_j + C q + bias.
    a = nn.Dense(self.g_width, use_bias=False, name="g0_first")(objects)
    bb = nn.Dense(self.g_width, use_bias=False, name="g0_second")(objects)
    cq = nn.Dense(self.g_width, name="g0_question")(q)
    pairs = nn.relu(a[:, :, None] + bb[:, None, :] + cq[:, None, None])   # [B, N, N, W]
    pairs = nn.relu(nn.Dense(self.g_width, name="g1")(pairs))
    pairs = nn.relu(nn.Dense(self.g_width, name="g2")(pairs))
    h = jnp.mean(pairs, axis=(1, 2))       # the sum over pairs, scaled by 1 / N^2
    h = nn.relu(nn.Dense(self.f_width, name="f0")(h))
    h = nn.relu(nn.Dense(self.f_width, name="f1")(h))
    return nn.Dense(self.num_classes, name="answer")(h)


VQANetTiny = functools.partial(VQANet, width=4, hidden=8, fused=8)
QuestionOnlyTiny = functools.partial(QuestionOnly, hidden=8, fused=8)
RelationNetTiny = functools.partial(RelationNet, width=4, hidden=8, g_width=8, f_width=8)
