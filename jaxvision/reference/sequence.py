"""NumPy oracles of the sequence models' building blocks (float64, loops over time)."""

from __future__ import annotations

import numpy as np

__all__ = ["mu_law_encode", "mu_law_decode", "gated_block", "wavenet_forward",
           "relation_pairs"]


def mu_law_encode(x, mu: int = 255) -> np.ndarray:
  x = np.clip(np.asarray(x, np.float64), -1, 1)
  f = np.sign(x) * np.log(1 + mu * np.abs(x)) / np.log(1 + mu)
  return np.clip(np.floor((f + 1) / 2 * mu + 0.5), 0, mu).astype(np.int64)


def mu_law_decode(q, mu: int = 255) -> np.ndarray:
  f = 2 * np.asarray(q, np.float64) / mu - 1
  return np.sign(f) * ((1 + mu) ** np.abs(f) - 1) / mu


def _sigmoid(x):
  return 1 / (1 + np.exp(-x))


def gated_block(h: np.ndarray, p: dict, dilation: int):
  """One residual block over ``h [B, T, C]`` with parameters ``kernel [k, C, 2C]``, ``bias``,
  ``residual`` / ``skip`` ``{kernel, bias}``: ``(h + residual, skip)``, time step by step."""
  h = np.asarray(h, np.float64)
  b, t, c = h.shape
  k = p["kernel"].shape[0]
  a = np.zeros((b, t, 2 * c))
  for ti in range(t):
    acc = np.array(p["bias"], np.float64)[None].repeat(b, 0)
    for j in range(k):
      src = ti - j * dilation
      if src >= 0:
        acc = acc + h[:, src] @ np.asarray(p["kernel"][j], np.float64)
    a[:, ti] = acc
  z = np.tanh(a[..., :c]) * _sigmoid(a[..., c:])
  res = z @ np.asarray(p["residual"]["kernel"], np.float64) + p["residual"]["bias"]
  skip = z @ np.asarray(p["skip"]["kernel"], np.float64) + p["skip"]["bias"]
  return h + res, skip


def wavenet_forward(params: dict, x: np.ndarray, dilations, *, classes: bool) -> np.ndarray:
  """A :class:`jaxvision.models.WaveNet`'s logits ``[B, T, K]`` from its parameter tree."""
  if classes:
    h = np.asarray(params["embed"]["embedding"], np.float64)[np.asarray(x)]
  else:
    x = np.asarray(x, np.float64)
    x = x[..., None] if x.ndim == 2 else x
    h = x @ np.asarray(params["embed"]["kernel"], np.float64) + params["embed"]["bias"]
  total = 0.0
  for i, d in enumerate(dilations):
    h, s = gated_block(h, params[f"block{i}"], int(d))
    total = total + s
  hid = np.maximum(np.maximum(total, 0) @ np.asarray(params["head_hidden"]["kernel"], np.float64)
                   + params["head_hidden"]["bias"], 0)
  return hid @ np.asarray(params["head_out"]["kernel"], np.float64) + params["head_out"]["bias"]


def relation_pairs(objects: np.ndarray, question: np.ndarray, weights: list) -> np.ndarray:
  """The relation network's summed pair codes, explicitly: for every ordered pair ``(i, j)``
  the MLP ``g`` (ReLU layers ``weights = [(W, b), ...]``) on ``[o_i, o_j, q]``; the mean over
  pairs. ``objects [B, N, D]``, ``question [B, Q]`` -> ``[B, W_last]``."""
  o = np.asarray(objects, np.float64)
  q = np.asarray(question, np.float64)
  b, n, _ = o.shape
  out = []
  for bi in range(b):
    acc = 0.0
    for i in range(n):
      for j in range(n):
        v = np.concatenate([o[bi, i], o[bi, j], q[bi]])
        for w, bias in weights:
          v = np.maximum(v @ np.asarray(w, np.float64) + bias, 0)
        acc = acc + v
    out.append(acc / (n * n))
  return np.stack(out)
