"""NumPy float64 oracles of CapsNet's pieces (Sabour et al. 2017): eq. 1 (squash), Procedure 1
(routing by agreement) and eq. 4 (margin loss), written from the paper's formulas."""

from __future__ import annotations

import numpy as np


def squash(s: np.ndarray) -> np.ndarray:
  """Eq. 1 along the last axis; 0 at the zero vector."""
  s = np.asarray(s, np.float64)
  sq = np.sum(s * s, axis=-1, keepdims=True)
  norm = np.sqrt(sq)
  with np.errstate(invalid="ignore", divide="ignore"):
    scale = np.where(norm > 0, sq / (1.0 + sq) / np.where(norm > 0, norm, 1.0), 0.0)
  return s * scale


def dynamic_routing(u_hat: np.ndarray, iterations: int) -> tuple[np.ndarray, np.ndarray]:
  """Procedure 1, literally: ``b = 0``; ``r`` times: ``c = softmax_j(b)``, ``s_j = sum_i
  c_ij u_hat_ij``, ``v_j = squash(s_j)``, ``b_ij += u_hat_ij . v_j``. Returns ``(v, c)`` of
  the last iteration (``u_hat [B, I, J, D]``)."""
  u_hat = np.asarray(u_hat, np.float64)
  b = np.zeros(u_hat.shape[:3])
  for _ in range(iterations):
    e = np.exp(b - b.max(axis=-1, keepdims=True))
    c = e / e.sum(axis=-1, keepdims=True)
    s = np.einsum("bij,bijd->bjd", c, u_hat)
    v = squash(s)
    b = b + np.einsum("bijd,bjd->bij", u_hat, v)
  return v, c


def margin_loss(lengths: np.ndarray, labels: np.ndarray, m_plus: float = 0.9,
                m_minus: float = 0.1, lam: float = 0.5) -> np.ndarray:
  """Eq. 4 summed over classes, per example."""
  lengths = np.asarray(lengths, np.float64)
  t = np.eye(lengths.shape[-1])[np.asarray(labels)]
  return np.sum(t * np.maximum(0, m_plus - lengths) ** 2
                + lam * (1 - t) * np.maximum(0, lengths - m_minus) ** 2, axis=-1)
