"""NumPy oracles of the generative-model and image-optimisation losses (float64, loops where
the definition is a loop)."""

from __future__ import annotations

import numpy as np
import scipy.linalg

__all__ = ["gram_matrix", "total_variation", "frechet_distance", "style_loss",
           "generator_loss", "discriminator_loss"]


def _log_sigmoid(x):
  return -np.logaddexp(0.0, -x)


def gram_matrix(features: np.ndarray) -> np.ndarray:
  """``[N, H, W, C] -> [N, C, C]``, ``G[n, c, d] = sum_{i,j} F[n,i,j,c] F[n,i,j,d] / (H W)``."""
  f = np.asarray(features, np.float64)
  n, h, w, c = f.shape
  out = np.zeros((n, c, c))
  for b in range(n):
    for i in range(h):
      for j in range(w):
        out[b] += np.outer(f[b, i, j], f[b, i, j])
  return out / (h * w)


def total_variation(images: np.ndarray) -> np.ndarray:
  """``[N, H, W, C] -> [N]``: sum of |vertical| + |horizontal| neighbour differences."""
  x = np.asarray(images, np.float64)
  n, h, w, _ = x.shape
  out = np.zeros(n)
  for b in range(n):
    for i in range(h):
      for j in range(w):
        if i + 1 < h:
          out[b] += np.abs(x[b, i + 1, j] - x[b, i, j]).sum()
        if j + 1 < w:
          out[b] += np.abs(x[b, i, j + 1] - x[b, i, j]).sum()
  return out


def style_loss(grams, targets) -> float:
  return float(np.mean([np.mean((np.asarray(g, np.float64) - np.asarray(t, np.float64)) ** 2)
                        for g, t in zip(grams, targets)]))


def frechet_distance(mu1, sigma1, mu2, sigma2) -> float:
  """``|mu1 - mu2|^2 + tr(S1 + S2 - 2 sqrtm(S1 S2))`` with SciPy's general ``sqrtm`` (the
  formula as usually written; its imaginary round-off is dropped)."""
  mu1, mu2 = np.asarray(mu1, np.float64), np.asarray(mu2, np.float64)
  s1, s2 = np.asarray(sigma1, np.float64), np.asarray(sigma2, np.float64)
  covmean = scipy.linalg.sqrtm(s1 @ s2)
  covmean = np.real(covmean)
  return float(np.sum((mu1 - mu2) ** 2) + np.trace(s1) + np.trace(s2) - 2 * np.trace(covmean))


def discriminator_loss(real_logits, fake_logits) -> float:
  r, f = np.asarray(real_logits, np.float64), np.asarray(fake_logits, np.float64)
  return float(np.mean(-_log_sigmoid(r)) + np.mean(-_log_sigmoid(-f)))


def generator_loss(fake_logits, saturating: bool = False) -> float:
  f = np.asarray(fake_logits, np.float64)
  if saturating:
    return float(np.mean(_log_sigmoid(-f)))   # log(1 - sigmoid(f))
  return float(np.mean(-_log_sigmoid(f)))
