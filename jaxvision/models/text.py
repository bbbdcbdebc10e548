"""Text classifiers over token ids ``[B, L]`` (0 = padding): the survey's text CNN and a
bag-of-words baseline that cannot see word order.

* :class:`TextCNN` (Kim 2014): embedding -> 1-D convolutions of several widths -> ReLU ->
  max over time -> dropout -> dense. A width-``w`` filter sees ``w`` consecutive words, so
  "not good" and "good" are different features.
* :class:`BagOfWords`: the mean of the embeddings of the non-padding tokens -> an MLP. Any
  permutation of the tokens gives the same output (tested), so a label that depends on word
  order is out of its reach.
"""

from __future__ import annotations

import functools
from typing import Sequence

import flax.linen as nn
import jax.numpy as jnp

__all__ = ["TextCNN", "TextCNNTiny", "BagOfWords", "BagOfWordsTiny"]


class TextCNN(nn.Module):
  num_classes: int = 2
  vocab_size: int = 10000
  embed_dim: int = 64
  widths: Sequence[int] = (2, 3, 4)
  features: int = 64
  dropout: float = 0.5

  @nn.compact
  def __call__(self, tokens, train: bool = False):
    mask = (tokens > 0)[..., None].astype(jnp.float32)
    x = nn.Embed(self.vocab_size, self.embed_dim, name="embed")(tokens) * mask
    pooled = []
    for w in self.widths:
      h = nn.relu(nn.Conv(self.features, (int(w),), padding="SAME", name=f"conv{w}")(x))
      # Max over time, over windows centred on real tokens only.
      pooled.append(jnp.max(jnp.where(mask > 0, h, -1e9), axis=1))
    h = jnp.concatenate(pooled, axis=-1)
    h = jnp.where(h < -1e8, 0.0, h)                       # an all-padding text
    h = nn.Dropout(self.dropout, deterministic=not train)(h)
    return nn.Dense(self.num_classes, name="out")(h)


TextCNNTiny = functools.partial(TextCNN, embed_dim=8, widths=(2, 3), features=8)


class BagOfWords(nn.Module):
  num_classes: int = 2
  vocab_size: int = 10000
  embed_dim: int = 64
  hidden: int = 128
  dropout: float = 0.0

  @nn.compact
  def __call__(self, tokens, train: bool = False):
    mask = (tokens > 0)[..., None].astype(jnp.float32)
    x = nn.Embed(self.vocab_size, self.embed_dim, name="embed")(tokens) * mask
    h = jnp.sum(x, axis=1) / jnp.maximum(jnp.sum(mask, axis=1), 1.0)
    h = nn.relu(nn.Dense(self.hidden, name="hidden")(h))
    h = nn.Dropout(self.dropout, deterministic=not train)(h)
    return nn.Dense(self.num_classes, name="out")(h)


BagOfWordsTiny = functools.partial(BagOfWords, embed_dim=8, hidden=8)
