"""NumPy oracles for the IIC objective (Ji, Henriques and Vedaldi, ICCV 2019): float64, loops.

The slow, obviously-correct versions of ``jaxvision.ops.iic_loss`` and the Pallas kernel in
``jaxvision.kernels.iic``. They import NumPy only, so they share no code with what they check.

Conventions (the same contract as the op and the kernel):

* ``z``, ``z_bar`` are ``[B, C]`` softmax outputs for two views of the same ``B`` images.
* ``P = sum_b outer(z_b, z_bar_b)``, symmetrised ``(P + P^T) / 2`` and divided by its sum.
* The marginals ``P_i``, ``P_j`` are the row and column sums of that (unclamped) ``P``; then
  ``P``, ``P_i`` and ``P_j`` are each clamped with ``max(., eps)`` before the logs, as
  ``IID_loss`` in the authors' code (xu-ji/IIC) does, whose ``eps`` is also the default here:
  ``sys.float_info.epsilon``.
"""

from __future__ import annotations

import sys

import numpy as np

__all__ = ["EPS", "joint_probability", "iic_loss"]

EPS = sys.float_info.epsilon  # xu-ji/IIC's EPS, about 2.2e-16


def _as_pair(z, z_bar) -> tuple[np.ndarray, np.ndarray]:
  z = np.asarray(z, dtype=np.float64)
  z_bar = np.asarray(z_bar, dtype=np.float64)
  if z.ndim != 2 or z.shape != z_bar.shape or z.shape[0] == 0 or z.shape[1] == 0:
    raise ValueError(f"`z` and `z_bar` must both have shape [B, C] with B, C > 0, got "
                     f"{z.shape} and {z_bar.shape}.")
  return z, z_bar


def joint_probability(z, z_bar) -> np.ndarray:
  """IIC's joint distribution of the two views' cluster assignments, in float64.

  Args:
    z: ``[B, C]`` softmax outputs for the first view.
    z_bar: ``[B, C]`` softmax outputs for the second view.

  Returns:
    ``[C, C]`` float64 ``P``: ``sum_b outer(z_b, z_bar_b)``, symmetrised, summing to 1.

  >>> joint_probability([[1.0, 0.0], [0.5, 0.5]], [[1.0, 0.0], [0.5, 0.5]]).tolist()
  [[0.625, 0.125], [0.125, 0.125]]
  """
  z, z_bar = _as_pair(z, z_bar)
  p = np.zeros((z.shape[1], z.shape[1]), dtype=np.float64)
  for b in range(z.shape[0]):
    p += np.outer(z[b], z_bar[b])
  p = (p + p.T) / 2.0
  return p / p.sum()


def iic_loss(z, z_bar, *, alpha: float = 1.0, eps: float = EPS) -> float:
  """The IIC loss ``-sum_ij P_ij (ln P_ij - alpha ln P_i - alpha ln P_j)``, in float64.

  ``P`` is :func:`joint_probability`; ``P_i = sum_j P_ij`` and ``P_j = sum_i P_ij``; then
  ``P``, ``P_i`` and ``P_j`` are clamped with ``max(., eps)`` before the logs. With
  ``alpha = 1`` this is minus the mutual information between the two assignments.

  Args:
    z: ``[B, C]`` softmax outputs for the first view.
    z_bar: ``[B, C]`` softmax outputs for the second view.
    alpha: weight of the marginal terms (the paper's lambda).
    eps: the clamp, > 0.

  Returns:
    The loss, a Python float.

  >>> round(iic_loss([[1.0, 0.0], [0.0, 1.0]], [[1.0, 0.0], [0.0, 1.0]]), 4)  # -ln 2
  -0.6931
  """
  if not eps > 0:
    raise ValueError(f"`eps` must be > 0, got {eps!r}.")
  p = joint_probability(z, z_bar)
  c = p.shape[0]
  p_i = p.sum(axis=1)
  p_j = p.sum(axis=0)
  p = np.maximum(p, eps)
  p_i = np.maximum(p_i, eps)
  p_j = np.maximum(p_j, eps)
  total = 0.0
  for i in range(c):
    for j in range(c):
      total += p[i, j] * (np.log(p[i, j]) - alpha * np.log(p_i[i]) - alpha * np.log(p_j[j]))
  return float(-total)
