"""NumPy oracles for MINE (Belghazi et al., ICML 2018): the Donsker-Varadhan bound, float64.

The slow, obviously-correct versions behind ``jaxvision.ops.mine_lower_bound``, plus the
bivariate Gaussian test case whose mutual information is known in closed form. NumPy only.

For a standard bivariate Gaussian ``(X, Y)`` with correlation ``rho``:

* ``I(X; Y) = -ln(1 - rho^2) / 2`` (0.1438 nats at ``rho = 0.5``);
* the log density ratio ``ln p(x, y) / (p(x) p(y)) = -ln(1 - rho^2) / 2
  - (x^2 - 2 rho x y + y^2) / (2 (1 - rho^2)) + (x^2 + y^2) / 2`` is the optimal statistic:
  the Donsker-Varadhan bound is tight for it (and for it plus any constant).
"""

from __future__ import annotations

import math

import numpy as np

__all__ = [
    "dv_lower_bound", "gaussian_mutual_information", "gaussian_log_density_ratio",
    "sample_gaussian_pairs",
]


def _check_rho(rho) -> float:
  rho = float(rho)
  if not -1.0 < rho < 1.0:
    raise ValueError(f"`rho` must be in (-1, 1), got {rho!r}.")
  return rho


def dv_lower_bound(t_joint, t_marginal) -> float:
  """The Donsker-Varadhan bound ``mean(T_joint) - ln mean(exp(T_marginal))``, in float64.

  Args:
    t_joint: statistic values on joint samples, any shape (every element is a sample).
    t_marginal: statistic values on product-of-marginals samples, any shape.

  Returns:
    A Python float. The log-mean-exp is shifted by the maximum, so large ``T`` is fine.

  >>> dv_lower_bound([1.0, 3.0], [0.0, 0.0])
  2.0
  """
  t_joint = np.asarray(t_joint, dtype=np.float64).ravel()
  t_marginal = np.asarray(t_marginal, dtype=np.float64).ravel()
  if t_joint.size == 0 or t_marginal.size == 0:
    raise ValueError("`t_joint` and `t_marginal` must each hold at least one value.")
  m = t_marginal.max()
  log_mean_exp = m + math.log(np.mean(np.exp(t_marginal - m)))
  return float(np.mean(t_joint) - log_mean_exp)


def gaussian_mutual_information(rho: float) -> float:
  """``I(X; Y) = -ln(1 - rho^2) / 2`` nats for a bivariate Gaussian with correlation ``rho``.

  >>> round(gaussian_mutual_information(0.5), 4)
  0.1438
  """
  rho = _check_rho(rho)
  return -0.5 * math.log(1.0 - rho * rho)


def gaussian_log_density_ratio(x, y, rho: float) -> np.ndarray:
  """``ln p(x, y) / (p(x) p(y))`` for the standard bivariate Gaussian with correlation ``rho``.

  Args:
    x, y: arrays of the same shape (broadcast).
    rho: the correlation, in ``(-1, 1)``.

  Returns:
    float64 array of the broadcast shape: the optimal MINE statistic.

  >>> float(gaussian_log_density_ratio(0.0, 0.0, 0.0))
  0.0
  """
  rho = _check_rho(rho)
  x = np.asarray(x, dtype=np.float64)
  y = np.asarray(y, dtype=np.float64)
  one_minus = 1.0 - rho * rho
  return (-0.5 * math.log(one_minus) - (x * x - 2.0 * rho * x * y + y * y) / (2.0 * one_minus)
          + (x * x + y * y) / 2.0)


def sample_gaussian_pairs(n: int, rho: float, *, seed: int = 0):
  """Samples of a standard bivariate Gaussian and of the product of its marginals.

  Args:
    n: the number of samples, > 0.
    rho: the correlation, in ``(-1, 1)``.
    seed: NumPy random seed.

  Returns:
    ``(joint, marginal)``, both ``[n, 2]`` float64: ``joint[i] = (x_i, y_i)`` correlated
    pairs (``y = rho x + sqrt(1 - rho^2) e``), and ``marginal[i] = (x_i, y_perm(i))`` with
    ``perm`` a random permutation: the shuffled pairs MINE uses for ``p(x) p(y)``.

  >>> joint, marginal = sample_gaussian_pairs(5, 0.5)
  >>> joint.shape, marginal.shape, bool(np.all(joint[:, 0] == marginal[:, 0]))
  ((5, 2), (5, 2), True)
  """
  if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n <= 0:
    raise ValueError(f"`n` must be a positive int, got {n!r}.")
  rho = _check_rho(rho)
  rng = np.random.default_rng(seed)
  x = rng.standard_normal(n)
  y = rho * x + math.sqrt(1.0 - rho * rho) * rng.standard_normal(n)
  joint = np.stack([x, y], axis=1)
  marginal = np.stack([x, y[rng.permutation(n)]], axis=1)
  return joint, marginal
