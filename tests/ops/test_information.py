"""Tests of the mutual-information ops (``jaxvision.ops.information``): IIC and MINE.

IIC: the loss and joint distribution are compared with the float64 oracle
``jaxvision.reference.iic`` (values) and with central finite differences of it (gradients);
the XLA path is compared with the Pallas kernel run by the interpreter (values and
gradients, single problems and stacked sub-heads); hand-computed cases pin the meaning
(-ln C for identical balanced one-hot views, 0 for independent views) and hypothesis checks
the symmetries (swapping the views, relabelling clusters, reordering the batch).

MINE: the Donsker-Varadhan bound is compared with the float64 oracle
``jaxvision.reference.mine``, checked to approach the analytic mutual information of a
bivariate Gaussian when ``T`` is the true log density ratio, and to be invariant to adding a
constant to ``T``; the bias-corrected gradient of ``mine_loss`` is compared with its closed
form.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from jaxvision import ops
from jaxvision.ops.information import EPS, iic_loss, joint_probability, mine_loss
from jaxvision.ops.information import mine_lower_bound
from jaxvision.reference import iic as ref_iic
from jaxvision.reference import mine as ref_mine


def _softmax(rng, shape, sharpness=2.0, dead_class=False):
  logits = rng.normal(size=shape) * sharpness
  z = np.exp(logits - logits.max(axis=-1, keepdims=True))
  z /= z.sum(axis=-1, keepdims=True)
  if dead_class and shape[-1] > 1:  # a cluster nobody uses: its marginals hit the clamp
    z[..., -1] = 0.0
    z /= z.sum(axis=-1, keepdims=True)
  return z.astype(np.float32)


def _assert_grads_close(got, want, rtol=2e-4):
  got, want = np.asarray(got, np.float64), np.asarray(want, np.float64)
  assert got.shape == want.shape
  np.testing.assert_allclose(got, want, rtol=rtol, atol=rtol * np.abs(want).max() + 1e-12)


def _oracle_loss(z, z_bar, **kwargs):
  """The float64 oracle over any leading dimensions."""
  z, z_bar = np.asarray(z, np.float64), np.asarray(z_bar, np.float64)
  out = np.zeros(z.shape[:-2])
  for idx in np.ndindex(*z.shape[:-2]):
    out[idx] = ref_iic.iic_loss(z[idx], z_bar[idx], **kwargs)
  return out


# ---------------------------------------------------------------------------------------------
# IIC.


def test_exported_from_ops():
  assert ops.iic_loss is iic_loss and ops.joint_probability is joint_probability
  assert ops.mine_lower_bound is mine_lower_bound and ops.mine_loss is mine_loss
  assert EPS == ref_iic.EPS


@pytest.mark.parametrize("shape", [(1, 1), (5, 3), (37, 10), (64, 50)])
def test_iic_matches_oracle(shape):
  rng = np.random.default_rng(list(shape))
  for sharpness, alpha, eps, dead in ((0.5, 1.0, EPS, False), (4.0, 1.0, EPS, True),
                                      (2.0, 2.5, EPS, False), (2.0, 0.0, 1e-3, True)):
    z = _softmax(rng, shape, sharpness, dead_class=dead)
    z_bar = _softmax(rng, shape, sharpness)
    p = joint_probability(z, z_bar)
    assert p.shape == (shape[1], shape[1]) and p.dtype == jnp.float32
    np.testing.assert_allclose(p, ref_iic.joint_probability(z, z_bar), rtol=1e-5, atol=1e-7)
    loss = iic_loss(z, z_bar, alpha=alpha, eps=eps, implementation="xla")
    assert loss.shape == () and loss.dtype == jnp.float32
    np.testing.assert_allclose(loss, ref_iic.iic_loss(z, z_bar, alpha=alpha, eps=eps),
                               rtol=1e-5, atol=1e-5)


def test_iic_leading_dims_are_independent_problems():
  rng = np.random.default_rng(1)
  z, z_bar = _softmax(rng, (2, 3, 17, 6)), _softmax(rng, (2, 3, 17, 6))
  loss = iic_loss(z, z_bar, alpha=1.5)
  assert loss.shape == (2, 3) and loss.dtype == jnp.float32
  np.testing.assert_allclose(loss, _oracle_loss(z, z_bar, alpha=1.5), rtol=1e-5, atol=1e-5)
  p = joint_probability(z, z_bar)
  assert p.shape == (2, 3, 6, 6)
  np.testing.assert_allclose(p[1, 2], ref_iic.joint_probability(z[1, 2], z_bar[1, 2]),
                             rtol=1e-5, atol=1e-7)
  # vmap over sub-heads and jit give the same as the batched call.
  heads = jax.vmap(lambda a, b: iic_loss(a, b, alpha=1.5))(z[0], z_bar[0])
  np.testing.assert_allclose(heads, loss[0], rtol=1e-6, atol=1e-7)
  jitted = jax.jit(lambda a, b: iic_loss(a, b, alpha=1.5))(z, z_bar)
  np.testing.assert_allclose(jitted, loss, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("shape", [(9, 4), (3, 21, 10)])
def test_iic_pallas_interpret_matches_xla(shape):
  rng = np.random.default_rng([5, *shape])
  for alpha, dead in ((1.0, False), (2.0, True)):
    z, z_bar = _softmax(rng, shape, 3.0, dead_class=dead), _softmax(rng, shape, 3.0)

    def total(a, b, implementation):
      return jnp.sum(iic_loss(a, b, alpha=alpha, implementation=implementation))

    xla = iic_loss(z, z_bar, alpha=alpha, implementation="xla")
    pallas = iic_loss(z, z_bar, alpha=alpha, implementation="pallas")
    assert pallas.shape == xla.shape == shape[:-2] and pallas.dtype == jnp.float32
    np.testing.assert_allclose(pallas, xla, rtol=1e-5, atol=1e-6)
    g_xla = jax.grad(total, argnums=(0, 1))(z, z_bar, "xla")
    g_pallas = jax.grad(total, argnums=(0, 1))(z, z_bar, "pallas")
    for got, want in zip(g_pallas, g_xla):
      _assert_grads_close(got, want)


def test_iic_gradient_matches_oracle_finite_differences():
  rng = np.random.default_rng(11)
  z, z_bar = _softmax(rng, (4, 3), 1.0), _softmax(rng, (4, 3), 1.0)
  alpha, h = 1.5, 1e-6
  got = jax.grad(lambda a, b: iic_loss(a, b, alpha=alpha), argnums=(0, 1))(z, z_bar)
  pair = [z.astype(np.float64), z_bar.astype(np.float64)]
  for arg, g in enumerate(got):
    assert g.dtype == jnp.float32
    fd = np.zeros(z.shape)
    for idx in np.ndindex(*z.shape):
      plus, minus = list(pair), list(pair)
      plus[arg], minus[arg] = pair[arg].copy(), pair[arg].copy()
      plus[arg][idx] += h
      minus[arg][idx] -= h
      fd[idx] = (ref_iic.iic_loss(*plus, alpha=alpha)
                 - ref_iic.iic_loss(*minus, alpha=alpha)) / (2 * h)
    np.testing.assert_allclose(g, fd, rtol=1e-3, atol=1e-4 * np.abs(fd).max())


def test_iic_one_hot_gradients_are_finite():
  # One-hot views: most of P is exactly 0 and hits the clamp; the gradient must stay finite
  # (0 through the clamped entries) and agree between the two paths.
  labels = np.array([0, 1, 2, 0, 1, 2, 0])
  z = np.eye(4, dtype=np.float32)[labels]  # cluster 3 unused: its marginals are clamped too
  z_bar = np.eye(4, dtype=np.float32)[np.roll(labels, 1)]
  for implementation in ("xla", "pallas"):
    loss, grads = jax.value_and_grad(
        lambda a, b, i=implementation: iic_loss(a, b, implementation=i), argnums=(0, 1))(
            z, z_bar)
    assert np.isfinite(loss)
    np.testing.assert_allclose(loss, ref_iic.iic_loss(z, z_bar), rtol=1e-5, atol=1e-6)
    assert all(np.all(np.isfinite(g)) for g in grads)
    assert any(np.abs(g).max() > 0 for g in grads)
    if implementation == "xla":
      want = grads
    else:
      for got, w in zip(grads, want):
        _assert_grads_close(got, w)


def test_iic_known_values():
  for c in (2, 4, 10):
    eye = np.eye(c, dtype=np.float32)
    views = np.tile(eye, (3, 1))  # identical one-hot views, C balanced clusters
    np.testing.assert_allclose(iic_loss(views, views), -math.log(c), rtol=1e-6)
    # Independent views: one side uniform, so P = P_i P_j and no information is shared.
    uniform = np.full(views.shape, 1.0 / c, np.float32)
    np.testing.assert_allclose(iic_loss(views, uniform), 0.0, atol=1e-5)
    np.testing.assert_allclose(iic_loss(uniform, uniform), 0.0, atol=1e-5)
  # By hand, identical views eye(2): P = diag(1/2, 1/2), P_i = P_j = 1/2, so
  # L = -2 * 1/2 * (ln 1/2 - 2 alpha ln 1/2) = (1 - 2 alpha) ln 2: ln 2 (the joint entropy)
  # at alpha = 0, -ln 2 at alpha = 1, -3 ln 2 at alpha = 2.
  eye = np.eye(2, dtype=np.float32)
  for alpha in (0.0, 1.0, 2.0):
    np.testing.assert_allclose(iic_loss(eye, eye, alpha=alpha), (1 - 2 * alpha) * math.log(2),
                               rtol=1e-6)
  # At alpha = 1 the loss is minus the mutual information of P, computed directly.
  rng = np.random.default_rng(2)
  z, z_bar = _softmax(rng, (30, 5)), _softmax(rng, (30, 5))
  p = ref_iic.joint_probability(z, z_bar)
  mi = np.sum(p * np.log(p / np.outer(p.sum(1), p.sum(0))))
  np.testing.assert_allclose(iic_loss(z, z_bar), -mi, rtol=1e-4, atol=1e-6)


def test_iic_low_precision_inputs():
  rng = np.random.default_rng(3)
  z, z_bar = _softmax(rng, (2, 25, 7)), _softmax(rng, (2, 25, 7))
  lo, lo_bar = jnp.asarray(z, jnp.bfloat16), jnp.asarray(z_bar, jnp.bfloat16)
  up, up_bar = np.asarray(lo, np.float32), np.asarray(lo_bar, np.float32)
  loss = iic_loss(lo, lo_bar)
  assert loss.dtype == jnp.float32 and joint_probability(lo, lo_bar).dtype == jnp.float32
  np.testing.assert_allclose(loss, _oracle_loss(up, up_bar), rtol=1e-5, atol=1e-5)
  g = jax.grad(lambda a: jnp.sum(iic_loss(a, lo_bar)))(lo)
  assert g.dtype == jnp.bfloat16 and np.all(np.isfinite(np.asarray(g, np.float32)))


@settings(max_examples=8, deadline=None)
@given(b=st.integers(1, 40), c=st.integers(1, 12), seed=st.integers(0, 2**31),
       alpha=st.sampled_from([0.0, 0.5, 1.0, 3.0]))
def test_iic_properties(b, c, seed, alpha):
  rng = np.random.default_rng(seed)
  z, z_bar = _softmax(rng, (b, c), 3.0), _softmax(rng, (b, c), 3.0)
  loss = float(iic_loss(z, z_bar, alpha=alpha))
  np.testing.assert_allclose(loss, ref_iic.iic_loss(z, z_bar, alpha=alpha), rtol=1e-5,
                             atol=1e-5)
  if alpha == 1.0:  # -MI of C clusters lies in [-ln C, 0]
    assert -math.log(c) - 1e-5 <= loss <= 1e-5
  # Symmetric in the two views, and invariant to relabelling clusters and reordering images.
  perm_c, perm_b = rng.permutation(c), rng.permutation(b)
  for other in (iic_loss(z_bar, z, alpha=alpha),
                iic_loss(z[:, perm_c], z_bar[:, perm_c], alpha=alpha),
                iic_loss(z[perm_b], z_bar[perm_b], alpha=alpha)):
    np.testing.assert_allclose(other, loss, rtol=1e-5, atol=1e-6)


def test_iic_bad_arguments():
  z = np.full((4, 3), 1 / 3, np.float32)
  with pytest.raises(ValueError, match="same shape"):
    iic_loss(z, z[:3])
  with pytest.raises(ValueError, match="`z`"):
    iic_loss(z[0], z[0])
  with pytest.raises(ValueError, match="`z`"):
    iic_loss(z[:0], z[:0])
  with pytest.raises(ValueError, match="`z_bar`"):
    joint_probability(z, np.zeros((4, 0), np.float32))
  with pytest.raises(TypeError, match="`z`"):
    iic_loss(np.ones((4, 3), np.int32), z)
  for alpha in (-0.5, math.nan, math.inf):
    with pytest.raises(ValueError, match="alpha"):
      iic_loss(z, z, alpha=alpha)
  with pytest.raises(TypeError, match="alpha"):
    iic_loss(z, z, alpha="one")
  for eps in (0.0, -1e-8, 1e-50, math.inf):
    with pytest.raises(ValueError, match="eps"):
      iic_loss(z, z, eps=eps)
  with pytest.raises(ValueError, match="implementation"):
    iic_loss(z, z, implementation="cuda")


@pytest.mark.parametrize("case, match", [
    ("logits", r"probabilities in \[0, 1\] \(softmax outputs, not logits\), found 2\.5"),
    ("negative", r"probabilities in \[0, 1\].*found -0\.25"),
    ("nan", r"probabilities in \[0, 1\].*found nan"),
    ("zero_row", r"probabilities whose rows .* within 0\.001; row \(2,\) sums to 0\."),
    ("half_row", r"probabilities whose rows .* within 0\.001; row \(1,\) sums to 0\.5\."),
])
@pytest.mark.parametrize("which", ["z", "z_bar"])
def test_iic_concrete_non_probabilities_raise(case, match, which):
  good = np.full((4, 2), 0.5, np.float32)
  bad = good.copy()
  if case == "logits":
    bad[:] = [[2.5, -1.0], [0.3, 0.2], [1.0, 2.0], [-3.0, 0.0]]
  elif case == "negative":
    bad[3] = [-0.25, 1.25]
  elif case == "nan":
    bad[0, 1] = np.nan
  elif case == "zero_row":
    bad[2] = 0.0
  else:
    bad[1] = 0.25
  args = (bad, good) if which == "z" else (good, bad)
  for fn in (iic_loss, joint_probability,
             lambda a, b: iic_loss(a, b, implementation="pallas")):
    with pytest.raises(ValueError, match=f"`{which}` must hold " + match):
      fn(*(jnp.asarray(a) for a in args))


def test_iic_row_sum_tolerance_follows_the_dtype():
  z = np.full((4, 2), 0.5, np.float32)
  z[0] = [0.5, 0.5009]  # off by 9e-4: within 1e-3
  iic_loss(z, z)
  z[0] = [0.5, 0.502]   # off by 2e-3: refused in float32 ...
  with pytest.raises(ValueError, match="`z` .*within 0.001.*sums to 1.00"):
    iic_loss(z, z)
  lo = jnp.asarray(z, jnp.bfloat16)  # ... accepted in bfloat16 (2**-7), as rounding allows
  assert np.isfinite(float(iic_loss(lo, lo)))
  with pytest.raises(ValueError, match="within 0.0078125"):
    iic_loss(jnp.full((4, 2), 0.51, jnp.bfloat16), lo)


def test_iic_traced_non_probabilities_give_nan_per_problem():
  rng = np.random.default_rng(8)
  z, z_bar = _softmax(rng, (3, 6, 4)), _softmax(rng, (3, 6, 4))
  bad = z.copy()
  bad[1] = rng.normal(size=(6, 4)) * 3  # problem 1: logits
  bad[2, 0] = 0.0                       # problem 2: an all-zero row
  want = _oracle_loss(z, z_bar)
  for fn in (jax.jit(iic_loss), jax.vmap(iic_loss),
             jax.jit(lambda a, b: iic_loss(a, b, implementation="pallas"))):
    loss = np.asarray(fn(bad, z_bar))
    np.testing.assert_allclose(loss[0], want[0], rtol=1e-5, atol=1e-6)
    assert np.isnan(loss[1]) and np.isnan(loss[2])
    assert np.all(np.isnan(np.asarray(fn(z_bar, bad))[1:]))
  p = np.asarray(jax.jit(joint_probability)(bad, z_bar))
  np.testing.assert_allclose(p[0], ref_iic.joint_probability(z[0], z_bar[0]), rtol=1e-5,
                             atol=1e-7)
  assert np.all(np.isnan(p[1:]))
  # Under grad (traced, not jitted) the same contract; valid problems keep their gradient.
  g = jax.grad(lambda a: iic_loss(a[0], z_bar[0]))(bad)
  assert np.all(np.isfinite(np.asarray(g)))


# ---------------------------------------------------------------------------------------------
# MINE.


def test_dv_bound_approaches_gaussian_mutual_information():
  rho = 0.5
  joint, marginal = ref_mine.sample_gaussian_pairs(200_000, rho, seed=0)
  t_joint = ref_mine.gaussian_log_density_ratio(joint[:, 0], joint[:, 1], rho)
  t_marginal = ref_mine.gaussian_log_density_ratio(marginal[:, 0], marginal[:, 1], rho)
  want = ref_mine.gaussian_mutual_information(rho)
  assert abs(want - 0.1438) < 1e-4
  # Standard error: sqrt((Var_joint[T] + Var_marginal[e^T]) / n) ~ sqrt(0.6 / 2e5) ~ 0.002.
  got = float(mine_lower_bound(jnp.asarray(t_joint, jnp.float32),
                               jnp.asarray(t_marginal, jnp.float32)))
  assert abs(got - want) < 0.01
  np.testing.assert_allclose(got, ref_mine.dv_lower_bound(t_joint, t_marginal), rtol=1e-4)
  # A statistic that ignores the pairing knows nothing: DV of T(x, y) = f(x) is ~ 0 or less.
  f_joint, f_marginal = joint[:, 0] ** 2, marginal[:, 0] ** 2
  assert float(mine_lower_bound(f_joint.astype(np.float32),
                                f_marginal.astype(np.float32))) < 0.01


def test_dv_bound_matches_numpy_and_is_shift_invariant():
  rng = np.random.default_rng(4)
  for n_joint, n_marginal, scale in ((1, 1, 1.0), (64, 64, 1.0), (50, 80, 5.0)):
    t_joint = (rng.normal(size=(n_joint, 1)) * scale).astype(np.float32)
    t_marginal = (rng.normal(size=n_marginal) * scale).astype(np.float32)
    got = mine_lower_bound(t_joint, t_marginal)
    assert got.shape == () and got.dtype == jnp.float32
    np.testing.assert_allclose(got, ref_mine.dv_lower_bound(t_joint, t_marginal), rtol=1e-5,
                               atol=1e-5)
    for shift in (-30.0, 7.0, 200.0):  # e^(T + 200) overflows float32: must not matter
      np.testing.assert_allclose(mine_lower_bound(t_joint + shift, t_marginal + shift), got,
                                 rtol=1e-5, atol=1e-4)
  # Hand case: mean(T_joint) = 2, ln mean(e^{0, ln 3}) = ln 2.
  np.testing.assert_allclose(mine_lower_bound([1.0, 3.0], [0.0, math.log(3.0)]),
                             2.0 - math.log(2.0), rtol=1e-6)


def test_mine_loss_value_and_ema_update():
  rng = np.random.default_rng(5)
  t_joint, t_marginal = rng.normal(size=16), rng.normal(size=16)
  batch_mean = np.mean(np.exp(t_marginal))
  loss, ema = mine_loss(t_joint, t_marginal)
  np.testing.assert_allclose(loss, -ref_mine.dv_lower_bound(t_joint, t_marginal), rtol=1e-5)
  np.testing.assert_allclose(ema, batch_mean, rtol=1e-6)  # first call initialises
  loss2, ema2 = mine_loss(t_joint, t_marginal, ema=3.0, decay=0.9)
  np.testing.assert_allclose(loss2, loss, rtol=1e-6)  # the value never depends on the EMA
  np.testing.assert_allclose(ema2, 0.9 * 3.0 + 0.1 * batch_mean, rtol=1e-6)
  jitted = jax.jit(lambda a, b, e: mine_loss(a, b, ema=e, decay=0.9))(t_joint, t_marginal, 3.0)
  np.testing.assert_allclose(jitted[0], loss2, rtol=1e-6)
  np.testing.assert_allclose(jitted[1], ema2, rtol=1e-6)


def test_mine_loss_corrected_gradient():
  rng = np.random.default_rng(6)
  n = 8
  t_joint = rng.normal(size=n).astype(np.float32)
  t_marginal = rng.normal(size=n).astype(np.float32)
  e_t = np.exp(t_marginal.astype(np.float64))

  def grads(ema, decay):
    return jax.grad(lambda a, b, e: mine_loss(a, b, ema=e, decay=decay)[0],
                    argnums=(0, 1, 2))(t_joint, t_marginal, ema)

  # Plain autodiff of -DV: d/dT_joint = -1/n, d/dT_marginal = softmax(T_marginal).
  plain = jax.grad(lambda a, b: -mine_lower_bound(a, b), argnums=(0, 1))(t_joint, t_marginal)
  np.testing.assert_allclose(plain[0], -np.ones(n) / n, rtol=1e-6)
  np.testing.assert_allclose(plain[1], e_t / e_t.sum(), rtol=1e-5)
  # EMA equal to the batch mean: the corrected gradient is the plain one.
  g_joint, g_marginal, g_ema = grads(np.float32(e_t.mean()), 0.99)
  np.testing.assert_allclose(g_joint, plain[0], rtol=1e-6)
  np.testing.assert_allclose(g_marginal, plain[1], rtol=1e-5)
  assert float(g_ema) == 0.0  # no gradient into the state
  first = jax.grad(lambda b: mine_loss(t_joint, b)[0])(t_marginal)  # ema=None
  np.testing.assert_allclose(first, plain[1], rtol=1e-5)
  # EMA away from the batch mean: d/dT_marginal = e^T / (n ema_new), ema_new the update.
  ema, decay = 5.0 * e_t.mean(), 0.9
  ema_new = decay * ema + (1 - decay) * e_t.mean()
  g_joint, g_marginal, _ = grads(np.float32(ema), decay)
  np.testing.assert_allclose(g_joint, plain[0], rtol=1e-6)
  np.testing.assert_allclose(g_marginal, e_t / (n * ema_new), rtol=1e-5)
  assert not np.allclose(g_marginal, plain[1], rtol=1e-2)
  # decay = 0 ignores the old average: the plain gradient again.
  np.testing.assert_allclose(grads(np.float32(ema), 0.0)[1], plain[1], rtol=1e-5)


def test_mine_bad_arguments():
  t = np.zeros(4, np.float32)
  with pytest.raises(ValueError, match="t_joint"):
    mine_lower_bound(np.zeros((0,), np.float32), t)
  with pytest.raises(ValueError, match="t_marginal"):
    mine_loss(t, np.zeros((3, 0), np.float32))
  with pytest.raises(TypeError, match="t_joint"):
    mine_lower_bound(np.zeros(4, np.int32), t)
  for decay in (1.0, -0.1, math.nan):
    with pytest.raises(ValueError, match="decay"):
      mine_loss(t, t, decay=decay)
  with pytest.raises(ValueError, match="ema"):
    mine_loss(t, t, ema=np.ones(2, np.float32))


@pytest.mark.parametrize("ema", [-1.0, 0.0, math.inf, math.nan, -1e-30])
def test_mine_ema_out_of_range(ema):
  t_joint, t_marginal = np.array([1.0, 3.0], np.float32), np.array([0.0, 1.0], np.float32)
  for e in (ema, np.float32(ema), jnp.asarray(ema)):
    with pytest.raises(ValueError, match=r"`ema` must be finite and > 0 .*got "):
      mine_loss(t_joint, t_marginal, ema=e)
  loss, new_ema = jax.jit(lambda a, b, e: mine_loss(a, b, ema=e))(t_joint, t_marginal, ema)
  assert np.isnan(float(loss)) and np.isnan(float(new_ema))
  # A valid ema under jit is unchanged by the guard.
  loss, new_ema = jax.jit(lambda a, b, e: mine_loss(a, b, ema=e, decay=0.5))(
      t_joint, t_marginal, 2.0)
  np.testing.assert_allclose(float(new_ema), 0.5 * 2.0 + 0.5 * (1 + math.e) / 2, rtol=1e-6)
  np.testing.assert_allclose(float(loss), -float(mine_lower_bound(t_joint, t_marginal)),
                             rtol=1e-6)


def test_mine_traced_decay_raises_type_error():
  t = np.zeros(4, np.float32)
  with pytest.raises(TypeError, match="`decay` must be a Python number"):
    jax.jit(lambda d: mine_loss(t, t, ema=1.0, decay=d))(0.5)
