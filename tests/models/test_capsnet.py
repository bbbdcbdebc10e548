"""CapsNet: squash (finite at 0), routing (against the paper's procedure, no gradient leak
through the agreement), margin loss, the paper's parameter count, and a training step."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from hypothesis import given, settings, strategies as st
from hypothesis.extra import numpy as hnp

from jaxvision.models import capsnet
from jaxvision.reference import capsnet as ref

KEY = jax.random.key(0)


@settings(max_examples=30, deadline=None)
@given(hnp.arrays(np.float32, (3, 5), elements=st.floats(-30, 30, width=32)))
def test_squash_matches_eq1_keeps_direction_and_maps_into_unit_ball(s):
  v = np.asarray(capsnet.squash(jnp.asarray(s)))
  np.testing.assert_allclose(v, ref.squash(s), rtol=1e-5, atol=1e-6)
  norms = np.linalg.norm(v, axis=-1)
  assert np.all(norms < 1.0 + 1e-6)
  nz = np.linalg.norm(s, axis=-1) > 1e-3
  cos = np.sum(v[nz] * s[nz], -1) / (norms[nz] * np.linalg.norm(s[nz], axis=-1))
  np.testing.assert_allclose(cos, 1.0, rtol=1e-5)


def test_squash_is_finite_with_a_finite_gradient_at_zero():
  """ageron/handson-ml #173: |s| as sqrt(sum s^2) has a NaN gradient at 0."""
  assert np.asarray(capsnet.squash(jnp.zeros((2, 8)))).tolist() == [[0.0] * 8] * 2
  g = jax.grad(lambda s: jnp.sum(capsnet.squash(s) ** 2 + capsnet.squash(s)))(jnp.zeros(8))
  assert np.all(np.isfinite(g)) and np.all(np.asarray(g) == 0.0)
  g = jax.jacfwd(capsnet.squash)(jnp.zeros(4))
  assert np.all(np.isfinite(g))
  # Hand value: |s| = 5 -> length 25 / 26.
  np.testing.assert_allclose(np.linalg.norm(capsnet.squash(jnp.array([3.0, 4.0]))), 25 / 26,
                             rtol=1e-6)


@pytest.mark.parametrize("iterations", [1, 2, 3, 5])
def test_routing_matches_procedure_1(iterations):
  u_hat = np.random.default_rng(iterations).normal(size=(2, 12, 4, 6)).astype(np.float32) * 0.5
  v, c = capsnet.dynamic_routing(jnp.asarray(u_hat), iterations)
  v_ref, c_ref = ref.dynamic_routing(u_hat, iterations)
  np.testing.assert_allclose(np.asarray(v), v_ref, rtol=1e-4, atol=1e-6)
  np.testing.assert_allclose(np.asarray(c), c_ref, rtol=1e-4, atol=1e-6)
  np.testing.assert_allclose(np.asarray(c).sum(-1), 1.0, rtol=1e-6)
  if iterations == 1:
    np.testing.assert_allclose(np.asarray(c), 0.25)


def test_routing_passes_no_gradient_through_the_agreement():
  """naturomics/CapsNet-Tensorflow #33: the gradient must equal the one with the final
  couplings c held constant (they depend on u_hat only through stop_gradient)."""
  u_hat = jax.random.normal(KEY, (2, 10, 3, 4))
  w = jax.random.normal(jax.random.key(1), (2, 3, 4))

  def f(u):
    v, _ = capsnet.dynamic_routing(u, 3)
    return jnp.sum(v * w)

  _, c = capsnet.dynamic_routing(u_hat, 3)
  c = jax.lax.stop_gradient(c)

  def f_fixed(u):
    return jnp.sum(capsnet.squash(jnp.einsum("bij,bijd->bjd", c, u)) * w)

  np.testing.assert_allclose(np.asarray(jax.grad(f)(u_hat)), np.asarray(jax.grad(f_fixed)(u_hat)),
                             rtol=1e-5, atol=1e-7)
  # ... and differs from the gradient that leaks through every iteration's agreement.
  def f_leaky(u):
    v, _ = ref_routing_jax(u, 3)
    return jnp.sum(v * w)
  assert not np.allclose(np.asarray(jax.grad(f)(u_hat)), np.asarray(jax.grad(f_leaky)(u_hat)),
                         rtol=1e-3, atol=1e-5)


def ref_routing_jax(u_hat, iterations):
  b = jnp.zeros(u_hat.shape[:3])
  for _ in range(iterations):
    c = jax.nn.softmax(b, -1)
    v = capsnet.squash(jnp.einsum("bij,bijd->bjd", c, u_hat))
    b = b + jnp.einsum("bijd,bjd->bij", u_hat, v)
  return v, c


def test_margin_loss_hand_values_and_oracle():
  lengths = jnp.array([[0.95, 0.05, 0.2], [0.5, 0.5, 0.0]])
  labels = jnp.array([0, 1])
  got = np.asarray(capsnet.margin_loss(lengths, labels))
  # Row 0: present 0, absent lam * (0.2 - 0.1)^2 = 0.005. Row 1: (0.9-0.5)^2 + 0.5 * 0.4^2.
  np.testing.assert_allclose(got, [0.005, 0.16 + 0.08], rtol=1e-5)
  np.testing.assert_allclose(got, ref.margin_loss(np.asarray(lengths), np.asarray(labels)),
                             rtol=1e-5)


def test_paper_size_and_shapes():
  """The paper's MNIST CapsNet has 8,215,568 parameters (6.8 M + the 1.4 M decoder; the
  figure CapsNet-Keras prints)."""
  x = jnp.zeros((1, 28, 28, 1))
  shapes = jax.eval_shape(capsnet.CapsNetPaper().init, KEY, x)
  n = sum(int(np.prod(a.shape)) for a in jax.tree.leaves(shapes))
  assert n == 8_215_568
  assert shapes["params"]["routing_weights"].shape == (1152, 10, 16, 8)


class _JittedApply:
  """``model`` for a helper that only calls ``model.apply`` (and returns Python values, so it
  cannot be jitted whole): the same call, jitted, as eager flax calls are slow."""

  def __init__(self, model):
    self.model = model

  def apply(self, variables, *args, method):
    return jax.jit(functools.partial(self.model.apply, method=method))(variables, *args)


def test_tiny_forward_shapes_reconstruction_and_perturbation():
  model = capsnet.CapsNetTiny()
  # rbg: the default threefry key's random bits take seconds to compile on XLA:CPU.
  key = jax.random.key(0, impl="rbg")
  x = jax.random.uniform(key, (3, 28, 28, 1))
  variables = jax.jit(model.init)(key, x)           # eager flax calls are slow
  lengths = jax.jit(model.apply)(variables, x)
  assert lengths.shape == (3, 10) and bool(jnp.all((lengths >= 0) & (lengths < 1)))
  pred, recon = jax.jit(lambda v, x: capsnet.reconstructions(model, v, x))(variables, x)
  assert pred.shape == (3,) and recon.shape == (3, 28, 28, 1)
  np.testing.assert_array_equal(np.asarray(pred), np.asarray(jnp.argmax(lengths, -1)))
  cls, pert = capsnet.perturbed_reconstructions(_JittedApply(model), variables, x[0],
                                                [-0.25, 0.0, 0.25])
  assert pert.shape == (8, 3, 28, 28, 1) and cls == int(pred[0])
  np.testing.assert_allclose(np.asarray(pert[0, 1]), np.asarray(recon[0]), atol=1e-5)
  with pytest.raises(ValueError, match="image_shape"):
    model.apply(variables, jnp.zeros((1, 32, 32, 1)))


def test_masking_keeps_only_the_chosen_capsule():
  caps = jnp.arange(2 * 3 * 2, dtype=jnp.float32).reshape(2, 3, 2) + 1
  out = np.asarray(capsnet.mask_capsules(caps, jnp.array([2, 0])))
  np.testing.assert_array_equal(out, [[0, 0, 0, 0, 5, 6], [7, 8, 0, 0, 0, 0]])


def test_a_few_steps_lower_the_loss_under_jit():
  model = capsnet.CapsNetTiny()
  rng = np.random.default_rng(0)
  x = jnp.asarray(rng.uniform(size=(16, 28, 28, 1)), jnp.float32)
  y = jnp.asarray(np.arange(16) % 10)
  params = jax.jit(model.init)(KEY, x)["params"]   # eager flax calls are slow
  tx = optax.adam(3e-3)
  opt = tx.init(params)

  @jax.jit
  def step(params, opt):
    (loss, (metrics, _)), g = jax.value_and_grad(
        lambda p: capsnet.losses(model, p, {}, x, y), has_aux=True)(params)
    assert set(metrics) == {"margin", "reconstruction_sse", "accuracy"}
    u, opt = tx.update(g, opt, params)
    return optax.apply_updates(params, u), opt, loss, g

  losses = []
  for _ in range(8):
    params, opt, loss, g = step(params, opt)
    losses.append(float(loss))
    assert all(np.all(np.isfinite(a)) for a in jax.tree.leaves(g))
  assert losses[-1] < 0.8 * losses[0]


def test_bad_routing_iterations():
  with pytest.raises(ValueError, match="iterations"):
    capsnet.dynamic_routing(jnp.zeros((1, 2, 3, 4)), 0)
  with pytest.raises(ValueError, match="u_hat"):
    capsnet.dynamic_routing(jnp.zeros((2, 3, 4)), 3)
