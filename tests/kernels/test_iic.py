"""Tests of the IIC kernel (``jaxvision.kernels.iic``) and its NumPy oracle.

The joint distribution and the loss are compared with the float64 oracles in
``jaxvision.reference.iic``; the custom VJP is compared with ``jax.grad`` of the plain
``jax.numpy`` implementation below (same formula, autodiff instead of the hand-derived
backward pass) and with central finite differences of the float64 oracle. ``_IICKernelChecks``
holds the checks; ``TestIICKernelInterpret`` runs them with the Pallas interpreter (CPU, what
CI runs) and ``TestIICKernelCompiled`` compiles them on a GPU; ``test_lowers_to_triton_for_gpu``
lowers the kernel for CUDA on the CPU machine (Pallas -> Triton IR).
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from jaxvision.kernels.iic import EPS, IICConfig, iic_loss, joint_probability
from jaxvision.reference import iic as ref
from tests.kernels import assert_lowers_to_triton

_SMALL = IICConfig(block_batch=8, block_classes=8, tiles_per_program=2)
_SHAPES = [((1, 1), _SMALL), ((5, 3), _SMALL), ((37, 10), _SMALL), ((130, 7), _SMALL),
           ((200, 50), IICConfig(block_batch=16, block_classes=16, tiles_per_program=3)),
           ((300, 10), IICConfig())]


def _jnp_loss(z, z_bar, alpha=1.0, eps=EPS):
  """The IIC loss in plain jax.numpy, differentiated by autodiff (the gradient's oracle)."""
  p = jnp.einsum("bi,bj->ij", z.astype(jnp.float32), z_bar.astype(jnp.float32),
                 precision=jax.lax.Precision.HIGHEST)
  p = (p + p.T) / 2
  p = p / jnp.sum(p)
  p_i, p_j = jnp.sum(p, axis=1), jnp.sum(p, axis=0)
  p, p_i, p_j = jnp.maximum(p, eps), jnp.maximum(p_i, eps), jnp.maximum(p_j, eps)
  return -jnp.sum(p * (jnp.log(p) - alpha * jnp.log(p_i)[:, None]
                       - alpha * jnp.log(p_j)[None, :]))


def _softmax(rng, shape, sharpness=2.0, dead_class=False):
  logits = rng.normal(size=shape) * sharpness
  z = np.exp(logits - logits.max(axis=-1, keepdims=True))
  z /= z.sum(axis=-1, keepdims=True)
  if dead_class and shape[-1] > 1:  # a cluster nobody uses: marginals hit the clamp
    z[:, -1] = 0.0
    z /= z.sum(axis=-1, keepdims=True)
  return z.astype(np.float32)


def _assert_grads_close(got, want, rtol=2e-4):
  got, want = np.asarray(got, np.float64), np.asarray(want, np.float64)
  assert got.shape == want.shape
  np.testing.assert_allclose(got, want, rtol=rtol, atol=rtol * np.abs(want).max() + 1e-12)


class _IICKernelChecks:
  """Checks of the IIC kernel; subclasses pick interpret mode or compilation."""

  INTERPRET = False

  def _loss(self, z, z_bar, config=_SMALL, **kwargs):
    return iic_loss(z, z_bar, config=config, interpret=self.INTERPRET, **kwargs)

  def _joint(self, z, z_bar, config=_SMALL):
    return joint_probability(z, z_bar, config=config, interpret=self.INTERPRET)

  @pytest.mark.parametrize("shape,config", _SHAPES)
  def test_matches_oracle(self, shape, config):
    rng = np.random.default_rng(list(shape))
    for sharpness, alpha in ((0.5, 1.0), (3.0, 1.0), (2.0, 2.5)):
      z, z_bar = _softmax(rng, shape, sharpness), _softmax(rng, shape, sharpness)
      p = self._joint(z, z_bar, config)
      assert p.shape == (shape[1], shape[1]) and p.dtype == jnp.float32
      np.testing.assert_allclose(p, ref.joint_probability(z, z_bar), rtol=1e-5, atol=1e-7)
      loss = self._loss(z, z_bar, config, alpha=alpha)
      assert loss.shape == () and loss.dtype == jnp.float32
      np.testing.assert_allclose(loss, ref.iic_loss(z, z_bar, alpha=alpha), rtol=1e-5,
                                 atol=1e-5)

  @pytest.mark.parametrize("shape,config", _SHAPES[1:5])
  def test_gradient_matches_autodiff(self, shape, config):
    rng = np.random.default_rng([7, *shape])
    for alpha, eps, dead in ((1.0, EPS, False), (2.0, EPS, True), (1.0, 1e-3, True)):
      z = _softmax(rng, shape, 4.0, dead_class=dead)
      z_bar = _softmax(rng, shape, 4.0)
      got = jax.grad(lambda a, b: self._loss(a, b, config, alpha=alpha, eps=eps),
                     argnums=(0, 1))(z, z_bar)
      want = jax.grad(functools.partial(_jnp_loss, alpha=alpha, eps=eps), argnums=(0, 1))(
          z, z_bar)
      for g, w in zip(got, want):
        assert g.dtype == jnp.float32
        _assert_grads_close(g, w)

  def test_gradient_matches_finite_differences(self):
    rng = np.random.default_rng(11)
    z, z_bar = _softmax(rng, (4, 3), 1.0), _softmax(rng, (4, 3), 1.0)
    alpha, h = 1.5, 1e-6
    got = jax.grad(lambda a, b: self._loss(a, b, alpha=alpha), argnums=(0, 1))(z, z_bar)
    for arg, g in enumerate(got):
      fd = np.zeros(z.shape)
      for idx in np.ndindex(*z.shape):
        pair = [z.astype(np.float64), z_bar.astype(np.float64)]
        plus, minus = pair[arg].copy(), pair[arg].copy()
        plus[idx] += h
        minus[idx] -= h
        args_p, args_m = list(pair), list(pair)
        args_p[arg], args_m[arg] = plus, minus
        fd[idx] = (ref.iic_loss(*args_p, alpha=alpha) - ref.iic_loss(*args_m, alpha=alpha)) / (
            2 * h)
      np.testing.assert_allclose(g, fd, rtol=1e-3, atol=1e-4 * np.abs(fd).max())

  def test_jit_grad_and_low_precision(self):
    rng = np.random.default_rng(3)
    z, z_bar = _softmax(rng, (37, 10)), _softmax(rng, (37, 10))
    loss_and_grad = jax.jit(jax.value_and_grad(lambda a, b: self._loss(a, b)))
    loss, grad = loss_and_grad(z, z_bar)
    np.testing.assert_allclose(loss, ref.iic_loss(z, z_bar), rtol=1e-5, atol=1e-5)
    _assert_grads_close(grad, jax.grad(_jnp_loss)(z, z_bar))
    for dtype in (jnp.bfloat16, jnp.float16):
      lo, lo_bar = jnp.asarray(z, dtype), jnp.asarray(z_bar, dtype)
      up, up_bar = (np.asarray(x.astype(jnp.float32)) for x in (lo, lo_bar))
      # float32 accumulation: as accurate as for the upcast inputs.
      np.testing.assert_allclose(self._joint(lo, lo_bar), ref.joint_probability(up, up_bar),
                                 rtol=1e-5, atol=1e-7)
      np.testing.assert_allclose(self._loss(lo, lo_bar), ref.iic_loss(up, up_bar), rtol=1e-5,
                                 atol=1e-5)
      g, g_bar = jax.grad(lambda a, b: self._loss(a, b), argnums=(0, 1))(lo, lo_bar)
      assert g.dtype == dtype and g_bar.dtype == dtype
      want = jax.grad(_jnp_loss)(jnp.asarray(up), jnp.asarray(up_bar))
      np.testing.assert_allclose(np.asarray(g, np.float32), want, rtol=2e-2,
                                 atol=2e-2 * np.abs(want).max())

  def test_known_values(self):
    eye = np.eye(4, dtype=np.float32)
    # Two views always agreeing on 4 equally used clusters: loss = -ln 4 (2 bits).
    np.testing.assert_allclose(self._loss(eye, eye), -np.log(4.0), rtol=1e-6)
    # Independent views (uniform marginals, so symmetrising keeps P = P_i P_j): no information.
    uniform = np.full((8, 4), 0.25, np.float32)
    np.testing.assert_allclose(self._loss(np.tile(eye, (2, 1)), uniform), 0.0, atol=1e-6)
    # A consistent relabelling: P is the (symmetric) permutation matrix / 4.
    np.testing.assert_allclose(self._joint(eye, eye[::-1]), eye[::-1] / 4, atol=1e-7)

  @settings(max_examples=6, deadline=None)
  @given(b=st.integers(1, 70), c=st.integers(1, 20), seed=st.integers(0, 2**31))
  def test_hypothesis_shapes(self, b, c, seed):
    rng = np.random.default_rng(seed)
    z, z_bar = _softmax(rng, (b, c)), _softmax(rng, (b, c))
    np.testing.assert_allclose(self._joint(z, z_bar), ref.joint_probability(z, z_bar),
                               rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(self._loss(z, z_bar), ref.iic_loss(z, z_bar), rtol=1e-5,
                               atol=1e-5)

  def test_bad_arguments(self):
    for bad in (0, 3, -8, 2.0, True, None):
      with pytest.raises(ValueError, match="block_batch"):
        IICConfig(block_batch=bad)
      with pytest.raises(ValueError, match="block_classes"):
        IICConfig(block_classes=bad)
    for bad in (0, -1, 1.5, True):
      with pytest.raises(ValueError, match="tiles_per_program"):
        IICConfig(tiles_per_program=bad)
    for bad in (0, 3, 64):
      with pytest.raises(ValueError, match="num_warps"):
        IICConfig(num_warps=bad)
    z = np.full((4, 3), 1 / 3, np.float32)
    with pytest.raises(ValueError, match="same shape"):
      self._loss(z, z[:, :2])
    with pytest.raises(ValueError, match="z_bar"):
      self._joint(z, z[0])
    with pytest.raises(ValueError, match=r"\[B, C\]"):
      self._loss(z[:0], z[:0])
    with pytest.raises(ValueError, match="eps"):
      self._loss(z, z, eps=0.0)


class TestIICKernelInterpret(_IICKernelChecks):
  INTERPRET = True


@pytest.mark.skipif(jax.default_backend() != "gpu", reason="compiled kernels need a GPU")
class TestIICKernelCompiled(_IICKernelChecks):
  INTERPRET = False


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.bfloat16])
def test_lowers_to_triton_for_gpu(dtype):
  z = jax.ShapeDtypeStruct((700, 10), dtype)
  assert_lowers_to_triton(jax.value_and_grad(iic_loss, argnums=(0, 1)), z, z)


def test_reference_matches_direct_formula():
  """The float64 oracle against an independent einsum form of the same definition."""
  rng = np.random.default_rng(0)
  z, z_bar = _softmax(rng, (9, 4)).astype(np.float64), _softmax(rng, (9, 4)).astype(np.float64)
  s = np.einsum("bi,bj->ij", z, z_bar)
  p = (s + s.T) / (2 * s.sum())
  mi = np.sum(p * np.log(p / np.outer(p.sum(1), p.sum(0))))
  np.testing.assert_allclose(ref.joint_probability(z, z_bar), p, rtol=1e-12)
  np.testing.assert_allclose(ref.iic_loss(z, z_bar), -mi, rtol=1e-12)
  with pytest.raises(ValueError, match="eps"):
    ref.iic_loss(z, z_bar, eps=0)
