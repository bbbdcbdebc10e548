"""Tests of the MINE oracles (``jaxvision.reference.mine``) against first principles.

The Donsker-Varadhan bound is checked on hand cases; the Gaussian log density ratio against
the densities written out with a matrix inverse and determinant; the sampler's statistics
against the requested correlation; and the pieces together: for the true ratio ``T``,
``E_marginal[e^T] = 1`` and ``E_joint[T] = I(X; Y) = -ln(1 - rho^2) / 2``.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from jaxvision.reference import mine as ref


def _log_ratio_from_densities(x, y, rho):
  cov = np.array([[1.0, rho], [rho, 1.0]])
  v = np.stack([x, y], axis=-1)
  quad = np.einsum("...i,ij,...j->...", v, np.linalg.inv(cov), v)
  log_joint = -math.log(2 * math.pi) - 0.5 * math.log(np.linalg.det(cov)) - 0.5 * quad
  log_marginals = -math.log(2 * math.pi) - 0.5 * (x ** 2 + y ** 2)
  return log_joint - log_marginals


def test_dv_lower_bound_hand_cases():
  assert ref.dv_lower_bound([1.0, 3.0], [0.0, 0.0]) == 2.0
  # ln mean(e^0, e^{ln 3}) = ln 2.
  assert ref.dv_lower_bound([[2.0]], [0.0, math.log(3.0)]) == pytest.approx(2 - math.log(2))
  # Huge values: the shifted log-mean-exp does not overflow, and constants cancel.
  assert ref.dv_lower_bound([1000.0], [1000.0, 1000.0]) == pytest.approx(0.0, abs=1e-12)
  rng = np.random.default_rng(0)
  t_joint, t_marginal = rng.normal(size=20), rng.normal(size=30)
  base = ref.dv_lower_bound(t_joint, t_marginal)
  assert base == pytest.approx(np.mean(t_joint) - np.log(np.mean(np.exp(t_marginal))))
  assert ref.dv_lower_bound(t_joint + 500, t_marginal + 500) == pytest.approx(base)
  with pytest.raises(ValueError, match="t_joint"):
    ref.dv_lower_bound([], [1.0])


def test_gaussian_mutual_information():
  assert ref.gaussian_mutual_information(0.0) == 0.0
  assert ref.gaussian_mutual_information(0.5) == pytest.approx(0.143841, abs=1e-6)
  assert ref.gaussian_mutual_information(-0.9) == ref.gaussian_mutual_information(0.9)
  for bad in (1.0, -1.0, 2.0):
    with pytest.raises(ValueError, match="rho"):
      ref.gaussian_mutual_information(bad)


@pytest.mark.parametrize("rho", [-0.8, 0.0, 0.5, 0.95])
def test_log_density_ratio_matches_densities(rho):
  rng = np.random.default_rng(1)
  x, y = rng.normal(size=50) * 2, rng.normal(size=50) * 2
  np.testing.assert_allclose(ref.gaussian_log_density_ratio(x, y, rho),
                             _log_ratio_from_densities(x, y, rho), rtol=1e-10, atol=1e-10)


def test_sampler_and_optimal_statistic():
  rho, n = 0.5, 100_000
  joint, marginal = ref.sample_gaussian_pairs(n, rho, seed=3)
  assert joint.shape == marginal.shape == (n, 2) and joint.dtype == np.float64
  np.testing.assert_array_equal(joint[:, 0], marginal[:, 0])
  np.testing.assert_array_equal(np.sort(joint[:, 1]), np.sort(marginal[:, 1]))  # shuffled y
  assert abs(np.corrcoef(joint.T)[0, 1] - rho) < 0.01
  assert abs(np.corrcoef(marginal.T)[0, 1]) < 0.01
  np.testing.assert_allclose(joint.std(axis=0), 1.0, atol=0.01)
  # Same seed, same samples; another seed, other samples.
  np.testing.assert_array_equal(ref.sample_gaussian_pairs(10, rho, seed=3)[0],
                                ref.sample_gaussian_pairs(10, rho, seed=3)[0])
  assert not np.array_equal(ref.sample_gaussian_pairs(10, rho, seed=4)[0],
                            ref.sample_gaussian_pairs(10, rho, seed=3)[0])
  t_joint = ref.gaussian_log_density_ratio(joint[:, 0], joint[:, 1], rho)
  t_marginal = ref.gaussian_log_density_ratio(marginal[:, 0], marginal[:, 1], rho)
  mi = ref.gaussian_mutual_information(rho)
  # E_{p(x)p(y)}[p(x,y) / (p(x)p(y))] = 1 and E_{p(x,y)}[T] = I; standard errors ~ 0.002.
  assert abs(np.mean(np.exp(t_marginal)) - 1.0) < 0.01
  assert abs(np.mean(t_joint) - mi) < 0.01
  assert abs(ref.dv_lower_bound(t_joint, t_marginal) - mi) < 0.015
  for bad in (0, -3, 2.5, True):
    with pytest.raises(ValueError, match="`n`"):
      ref.sample_gaussian_pairs(bad, rho)
