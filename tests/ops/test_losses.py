"""Tests of the detection losses (``jaxvision.ops.losses``).

Oracle: ``jaxvision.reference.losses`` (float64 formulas one anchor at a time, hard negatives
sorted per image in a Python loop) on random logits, labels and offsets, unbatched ``[A, C]``
and batched ``[B, A, C]`` / ``[B1, B2, A, C]``, float32 and bfloat16 logits, jit and eager.
Hand-computed values pin the formulas; hypothesis checks the textbook properties (focal <=
CE for alpha <= 1, focal(gamma 0, alpha 1) = CE, Huber <= L1 and = 0.5 d^2 for small d, hard
negatives are the largest-loss negatives and exactly ``min(ratio #pos, #neg)`` of them).
Gradients must stay finite where the losses are flat or kinked (p_t = 1, d = 0).
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from jaxvision import ops
from jaxvision.ops import losses
from jaxvision.reference import losses as ref

_SHAPES = [(7,), (3, 9), (2, 3, 5)]  # the anchor dimensions: [A], [B, A], [B1, B2, A]


def _logits(rng, shape, num_classes, scale=3.0):
  return (scale * rng.normal(size=shape + (num_classes,))).astype(np.float32)


def _labels(rng, shape, num_classes, p_background=0.6):
  labels = rng.integers(1, num_classes, shape)
  return np.where(rng.random(shape) < p_background, 0, labels).astype(np.int32)


def _f64(x):
  return np.asarray(x, np.float64)


# ---------------------------------------------------------------------------------------------
# Oracle comparisons.


@pytest.mark.parametrize("shape", _SHAPES, ids=str)
@pytest.mark.parametrize("num_classes", [2, 11])
@pytest.mark.parametrize("jit", [False, True], ids=["eager", "jit"])
def test_cross_entropy_matches_oracle(shape, num_classes, jit):
  rng = np.random.default_rng(len(shape) * 100 + num_classes)
  logits = _logits(rng, shape, num_classes)
  labels = _labels(rng, shape, num_classes)
  fn = jax.jit(ops.softmax_cross_entropy) if jit else ops.softmax_cross_entropy
  out = fn(logits, labels)
  assert out.shape == shape and out.dtype == jnp.float32
  np.testing.assert_allclose(_f64(out), ref.softmax_cross_entropy(logits, labels),
                             rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("shape", _SHAPES, ids=str)
@pytest.mark.parametrize("gamma,alpha", [(2.0, 0.25), (0.0, 1.0), (0.5, 0.75), (1.0, 2.0),
                                         (5.0, 0.25)])
def test_focal_matches_oracle(shape, gamma, alpha):
  rng = np.random.default_rng(len(shape) + int(10 * gamma))
  logits = _logits(rng, shape, 6)
  labels = _labels(rng, shape, 6)
  fn = jax.jit(lambda x, y: ops.focal_loss(x, y, gamma=gamma, alpha=alpha))
  for out in (fn(logits, labels), ops.focal_loss(logits, labels, gamma=gamma, alpha=alpha)):
    assert out.shape == shape and out.dtype == jnp.float32
    np.testing.assert_allclose(_f64(out),
                               ref.focal_loss(logits, labels, gamma=gamma, alpha=alpha),
                               rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("loss", ["ce", "focal"])
def test_bfloat16_logits_are_computed_in_float32(loss):
  rng = np.random.default_rng(3)
  logits = _logits(rng, (4, 20), 5).astype(jnp.bfloat16)
  labels = _labels(rng, (4, 20), 5)
  if loss == "ce":
    out, want = ops.softmax_cross_entropy(logits, labels), ref.softmax_cross_entropy(
        np.asarray(logits, np.float64), labels)
  else:
    out, want = ops.focal_loss(logits, labels), ref.focal_loss(np.asarray(logits, np.float64),
                                                               labels)
  assert out.dtype == jnp.float32
  # The bfloat16 values themselves are the input: float32 accuracy on them.
  np.testing.assert_allclose(_f64(out), want, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("shape", _SHAPES, ids=str)
@pytest.mark.parametrize("delta", [1.0, 0.3, 2.5])
def test_regression_losses_match_oracle(shape, delta):
  rng = np.random.default_rng(len(shape))
  pred = (2 * rng.normal(size=shape + (4,))).astype(np.float32)
  tgt = (2 * rng.normal(size=shape + (4,))).astype(np.float32)
  l1 = ops.l1_loss(pred, tgt)
  huber = jax.jit(lambda p, t: ops.smooth_l1_loss(p, t, delta=delta))(pred, tgt)
  assert l1.shape == huber.shape == shape
  np.testing.assert_allclose(_f64(l1), ref.l1_loss(pred, tgt), rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(_f64(huber), ref.smooth_l1_loss(pred, tgt, delta=delta),
                             rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("shape", _SHAPES + [(4, 30)], ids=str)
@pytest.mark.parametrize("ratio,min_negatives", [(3.0, 0), (1.5, 0), (0.0, 2), (3.0, 4),
                                                 (100.0, 0)])
@pytest.mark.parametrize("ties", [False, True], ids=["distinct", "ties"])
def test_hard_negative_mask_matches_oracle(shape, ratio, min_negatives, ties):
  rng = np.random.default_rng(sum(shape) + int(ratio))
  if ties:  # many equal losses: ties must go to the lower index
    loss = rng.integers(0, 3, shape).astype(np.float32)
  else:
    loss = rng.random(shape).astype(np.float32)
  positive = rng.random(shape) < 0.2
  positive[(0,) * (len(shape) - 1)] = False  # an image (or the only one) without positives
  out = ops.hard_negative_mask(loss, positive, ratio=ratio, min_negatives=min_negatives)
  assert out.shape == shape and out.dtype == jnp.bool_
  np.testing.assert_array_equal(
      np.asarray(out),
      ref.hard_negative_mask(loss, positive, ratio=ratio, min_negatives=min_negatives))


@pytest.mark.parametrize("classification", ["ce", "focal"])
@pytest.mark.parametrize("localization", ["l1", "smooth_l1"])
@pytest.mark.parametrize("hard_negative_ratio", [None, 3.0, 0.5])
@pytest.mark.parametrize("shape", [(2, 40), (40,)], ids=str)
def test_ssd_loss_matches_oracle(classification, localization, hard_negative_ratio, shape):
  rng = np.random.default_rng(7)
  logits = _logits(rng, shape, 5)
  labels = _labels(rng, shape, 5, p_background=0.85)
  off = rng.normal(size=shape + (4,)).astype(np.float32)
  tgt = (off + rng.normal(size=shape + (4,)) * rng.choice([0.3, 3.0], shape + (1,))).astype(
      np.float32)
  kw = dict(classification=classification, localization=localization,
            hard_negative_ratio=hard_negative_ratio, focal_gamma=1.5, focal_alpha=0.5,
            localization_weight=2.0)
  loss, parts = ops.ssd_loss(logits, off, labels, tgt, **kw)
  want, want_parts = ref.ssd_loss(logits, off, labels, tgt, **kw)
  assert loss.shape == () and int(parts["num_positives"]) == want_parts["num_positives"] > 0
  np.testing.assert_allclose(float(loss), want, rtol=1e-5)
  for k in ("classification", "localization"):
    np.testing.assert_allclose(float(parts[k]), want_parts[k], rtol=1e-5, err_msg=k)


def test_jit_matches_eager():
  rng = np.random.default_rng(5)
  logits = _logits(rng, (2, 30), 4)
  labels = _labels(rng, (2, 30), 4, p_background=0.8)
  off = rng.normal(size=(2, 30, 4)).astype(np.float32)
  tgt = rng.normal(size=(2, 30, 4)).astype(np.float32)
  kw = dict(classification="focal", localization="smooth_l1", hard_negative_ratio=3.0)
  loss, parts = jax.jit(lambda *a: ops.ssd_loss(*a, **kw))(logits, off, labels, tgt)
  want, want_parts = ops.ssd_loss(logits, off, labels, tgt, **kw)
  np.testing.assert_allclose(float(loss), float(want), rtol=1e-6)
  for k in want_parts:
    np.testing.assert_allclose(float(parts[k]), float(want_parts[k]), rtol=1e-6, err_msg=k)
  mask = jax.jit(lambda l, p: ops.hard_negative_mask(l, p, ratio=1.5, min_negatives=2))(
      logits[..., 0], labels > 0)
  np.testing.assert_array_equal(
      np.asarray(mask), ref.hard_negative_mask(logits[..., 0], labels > 0, ratio=1.5,
                                               min_negatives=2))


def test_ssd_loss_without_positives_divides_by_one():
  rng = np.random.default_rng(0)
  logits = _logits(rng, (2, 6), 3)
  labels = np.zeros((2, 6), np.int32)
  off, tgt = np.ones((2, 6, 4), np.float32), np.zeros((2, 6, 4), np.float32)
  loss, parts = ops.ssd_loss(logits, off, labels, tgt)
  assert int(parts["num_positives"]) == 0 and float(parts["localization"]) == 0.0
  np.testing.assert_allclose(float(loss), ref.softmax_cross_entropy(logits, labels).sum(),
                             rtol=1e-5)
  # With mining and no positives no negative is kept (min_negatives is 0): the loss is 0.
  loss, _ = ops.ssd_loss(logits, off, labels, tgt, hard_negative_ratio=3.0)
  assert float(loss) == 0.0


# ---------------------------------------------------------------------------------------------
# Hand-computed values.


def test_hand_computed_values():
  # Uniform logits: CE = log C; focal = alpha (1 - 1/C)^gamma log C.
  ce = ops.softmax_cross_entropy(jnp.zeros((1, 4)), jnp.array([2]))
  np.testing.assert_allclose(float(ce[0]), math.log(4), rtol=1e-6)
  fl = ops.focal_loss(jnp.zeros((1, 4)), jnp.array([2]), gamma=2.0, alpha=0.25)
  np.testing.assert_allclose(float(fl[0]), 0.25 * 0.75 ** 2 * math.log(4), rtol=1e-6)
  # Two classes [log 3, 0]: p = (3/4, 1/4).
  logits = jnp.array([[math.log(3.0), 0.0]] * 2)
  ce = ops.softmax_cross_entropy(logits, jnp.array([0, 1]))
  np.testing.assert_allclose(np.asarray(ce), [-math.log(0.75), -math.log(0.25)], rtol=1e-6)
  fl = ops.focal_loss(logits, jnp.array([0, 1]), gamma=1.0, alpha=0.5)
  np.testing.assert_allclose(np.asarray(fl), [0.5 * 0.25 * -math.log(0.75),
                                              0.5 * 0.75 * -math.log(0.25)], rtol=1e-6)
  # Large logits: no overflow, CE of the winner 0, of the loser the gap.
  ce = ops.softmax_cross_entropy(jnp.array([[1000.0, 0.0]] * 2), jnp.array([0, 1]))
  np.testing.assert_allclose(np.asarray(ce), [0.0, 1000.0], rtol=1e-6)
  # Huber with delta 1 on d = (0.5, -3, 1, 0): 0.125 + 2.5 + 0.5 + 0; L1: 4.5.
  d = jnp.array([[0.5, -3.0, 1.0, 0.0]])
  assert float(ops.smooth_l1_loss(d, jnp.zeros((1, 4)))[0]) == pytest.approx(3.125)
  assert float(ops.smooth_l1_loss(d, jnp.zeros((1, 4)), delta=2.0)[0]) == pytest.approx(
      0.125 + 2.0 * (3.0 - 1.0) + 0.5)
  assert float(ops.l1_loss(d, jnp.zeros((1, 4)))[0]) == pytest.approx(4.5)


def test_hand_computed_hard_negatives():
  loss = jnp.array([[0.9, 0.1, 0.8, 0.3, 0.7, 0.3],
                    [0.5, 0.5, 0.5, 0.5, 0.5, 0.5]])
  positive = jnp.array([[True, False, False, False, False, False],
                        [False, False, True, False, False, False]])
  out = ops.hard_negative_mask(loss, positive, ratio=3)
  # Image 0: the positive's 0.9 is not a candidate; 0.8, 0.7 and the first 0.3 (index 3).
  # Image 1: all tied: the three lowest indices that are negatives.
  assert np.asarray(out).tolist() == [[False, False, True, True, True, False],
                                      [True, True, False, True, False, False]]
  assert np.asarray(ops.hard_negative_mask(loss, positive, ratio=10)).sum(axis=-1).tolist() == [
      5, 5]


def test_hand_computed_ssd_loss():
  # Anchors: 0 background (confident), 1 positive class 2, 2 background (unsure).
  logits = jnp.array([[[10.0, 0.0, 0.0], [0.0, 0.0, 0.0], [0.0, 0.0, 0.0]]])
  labels = jnp.array([[0, 2, 0]])
  off = jnp.zeros((1, 3, 4))
  tgt = jnp.array([[[9.0] * 4, [0.5, -2.0, 0.0, 1.0], [9.0] * 4]])  # background ignored
  loss, parts = ops.ssd_loss(logits, off, labels, tgt)
  ce0 = math.log(1 + 2 * math.exp(-10.0))
  want_cls = ce0 + 2 * math.log(3.0)
  assert int(parts["num_positives"]) == 1
  assert float(parts["classification"]) == pytest.approx(want_cls, rel=1e-5)
  assert float(parts["localization"]) == pytest.approx(3.5)
  assert float(loss) == pytest.approx(want_cls + 3.5, rel=1e-5)
  loss, parts = ops.ssd_loss(logits, off, labels, tgt, localization="smooth_l1",
                             localization_weight=0.5)
  assert float(parts["localization"]) == pytest.approx(0.125 + 1.5 + 0.5)
  assert float(loss) == pytest.approx(want_cls + 0.5 * 2.125, rel=1e-5)
  # Mining with ratio 1: the positive and the harder negative (anchor 2) only.
  _, parts = ops.ssd_loss(logits, off, labels, tgt, hard_negative_ratio=1.0)
  assert float(parts["classification"]) == pytest.approx(2 * math.log(3.0), rel=1e-5)


# ---------------------------------------------------------------------------------------------
# Properties.

_ANCHOR_SHAPES = st.sampled_from([(5,), (2, 8), (3, 1, 6)])
_settings = settings(max_examples=30)


@_settings
@given(shape=_ANCHOR_SHAPES, seed=st.integers(0, 2**31 - 1),
       gamma=st.floats(0.0, 5.0), alpha=st.floats(0.01, 1.0),
       scale=st.sampled_from([0.1, 3.0, 30.0]))
def test_focal_at_most_cross_entropy(shape, seed, gamma, alpha, scale):
  rng = np.random.default_rng(seed)
  logits = _logits(rng, shape, 4, scale)
  labels = _labels(rng, shape, 4)
  ce = np.asarray(ops.softmax_cross_entropy(logits, labels))
  fl = np.asarray(ops.focal_loss(logits, labels, gamma=gamma, alpha=alpha))
  assert (fl >= 0).all() and (ce >= 0).all()
  assert (fl <= ce * (1 + 1e-6) + 1e-7).all()


@_settings
@given(shape=_ANCHOR_SHAPES, seed=st.integers(0, 2**31 - 1),
       scale=st.sampled_from([0.1, 3.0, 30.0]))
def test_focal_gamma0_alpha1_is_cross_entropy(shape, seed, scale):
  rng = np.random.default_rng(seed)
  logits = _logits(rng, shape, 4, scale)
  labels = _labels(rng, shape, 4)
  np.testing.assert_allclose(np.asarray(ops.focal_loss(logits, labels, gamma=0.0, alpha=1.0)),
                             np.asarray(ops.softmax_cross_entropy(logits, labels)),
                             rtol=1e-6, atol=0)


@_settings
@given(shape=_ANCHOR_SHAPES, seed=st.integers(0, 2**31 - 1), delta=st.floats(0.05, 5.0),
       scale=st.sampled_from([0.01, 1.0, 10.0]))
def test_smooth_l1_at_most_l1_and_quadratic_when_small(shape, seed, delta, scale):
  rng = np.random.default_rng(seed)
  pred = (scale * rng.normal(size=shape + (4,))).astype(np.float32)
  tgt = (scale * rng.normal(size=shape + (4,))).astype(np.float32)
  huber = np.asarray(ops.smooth_l1_loss(pred, tgt, delta=delta), np.float64)
  l1 = np.asarray(ops.l1_loss(pred, tgt), np.float64)
  # Huber(d) <= delta |d|: for delta <= 1, Huber <= L1 elementwise and so summed.
  assert (huber <= max(delta, 1.0) * l1 * (1 + 1e-6) + 1e-7).all()
  if delta <= 1.0:
    assert (huber <= l1 * (1 + 1e-6) + 1e-7).all()
  # Where every |d| <= delta, the sum of 0.5 d^2.
  d = np.abs(pred.astype(np.float64) - tgt)
  small = (d <= delta * (1 - 1e-6)).all(axis=-1)
  np.testing.assert_allclose(huber[small], (0.5 * d * d).sum(axis=-1)[small], rtol=1e-5,
                             atol=1e-9)


@_settings
@given(shape=st.sampled_from([(12,), (3, 10), (2, 2, 7)]), seed=st.integers(0, 2**31 - 1),
       ratio=st.sampled_from([0.0, 0.5, 1.0, 3.0, 7.0]), p_pos=st.floats(0.0, 1.0),
       ties=st.booleans())
def test_hard_negative_mask_properties(shape, seed, ratio, p_pos, ties):
  rng = np.random.default_rng(seed)
  loss = (rng.integers(0, 3, shape) if ties else rng.random(shape)).astype(np.float32)
  positive = rng.random(shape) < p_pos
  mask = np.asarray(ops.hard_negative_mask(loss, positive, ratio=ratio))
  assert not (mask & positive).any()  # never a positive
  for idx in np.ndindex(shape[:-1]):
    m, pos, row = mask[idx], positive[idx], loss[idx]
    want = min(math.floor(ratio * pos.sum()), int((~pos).sum()))
    assert m.sum() == want  # exactly min(ratio #pos, #neg)
    if 0 < want < (~pos).sum():  # the largest losses: no unselected negative beats one kept
      assert row[m].min() >= row[~m & ~pos].max()


# ---------------------------------------------------------------------------------------------
# Gradients.


@pytest.mark.parametrize("gamma", [0.0, 0.5, 1.0, 2.0, 5.0])
def test_focal_gradient_finite_at_certainty(gamma):
  # p_t = 1 exactly in float32 (the other classes are exp(-100) = 0): the loss is flat.
  logits = jnp.array([[100.0, 0.0, -3.0], [0.0, 200.0, 0.0], [1.0, 0.0, 0.5]])
  labels = jnp.array([0, 1, 2])

  def f(x):
    return ops.focal_loss(x, labels, gamma=gamma, alpha=0.25).sum()

  grad = np.asarray(jax.jit(jax.grad(f))(logits))
  assert np.isfinite(grad).all(), grad
  np.testing.assert_array_equal(grad[:2], 0.0)
  assert np.abs(grad[2]).sum() > 0  # the unsure anchor does get a gradient
  # And through ssd_loss with the focal loss.
  g = jax.grad(lambda x: ops.ssd_loss(x[None], jnp.zeros((1, 3, 4)), labels[None],
                                      jnp.zeros((1, 3, 4)), classification="focal",
                                      focal_gamma=gamma)[0])(logits)
  assert np.isfinite(np.asarray(g)).all()


def test_focal_gradient_matches_finite_differences():
  rng = np.random.default_rng(0)
  logits = rng.normal(size=(3, 4))
  labels = np.array([0, 2, 3])
  grad = np.asarray(jax.grad(lambda x: ops.focal_loss(x, labels, gamma=1.5).sum())(
      jnp.asarray(logits, jnp.float32)))
  eps = 1e-5
  for i in range(3):
    for c in range(4):
      up, down = logits.copy(), logits.copy()
      up[i, c] += eps
      down[i, c] -= eps
      num = (ref.focal_loss(up, labels, gamma=1.5).sum()
             - ref.focal_loss(down, labels, gamma=1.5).sum()) / (2 * eps)
      assert grad[i, c] == pytest.approx(num, abs=1e-4)


def test_regression_gradients_finite_at_zero_difference():
  x = jnp.array([[0.0, 0.5, -3.0, 2.0]])
  t = jnp.array([[0.0, 0.0, 0.0, 2.0]])  # d = 0 in the first and last coordinate
  g = np.asarray(jax.grad(lambda p: ops.smooth_l1_loss(p, t).sum())(x))
  np.testing.assert_allclose(g, [[0.0, 0.5, -1.0, 0.0]])
  g = np.asarray(jax.grad(lambda p: ops.l1_loss(p, t).sum())(x))
  assert np.isfinite(g).all()
  np.testing.assert_allclose(g[0, 1:3], [1.0, -1.0])
  # Through ssd_loss, every option, including at d = 0.
  logits, labels = jnp.zeros((1, 1, 3)), jnp.array([[1]])
  for loc in ("l1", "smooth_l1"):
    for cls in ("ce", "focal"):
      g = jax.grad(lambda a, b: ops.ssd_loss(a, b, labels, t[None], classification=cls,
                                             localization=loc, hard_negative_ratio=3.0)[0],
                   argnums=(0, 1))(logits, x[None])
      assert all(np.isfinite(np.asarray(v)).all() for v in g)


def test_hard_negatives_get_no_gradient_through_the_selection():
  # The mask is computed on stop_gradient(losses): the gradient is that of the kept sum.
  rng = np.random.default_rng(1)
  logits = jnp.asarray(_logits(rng, (1, 10), 3))
  labels = jnp.asarray([[1, 0, 0, 0, 0, 0, 0, 0, 0, 2]])
  zeros = jnp.zeros((1, 10, 4))
  keep = np.asarray(labels > 0) | ref.hard_negative_mask(
      ref.softmax_cross_entropy(np.asarray(logits), np.asarray(labels)),
      np.asarray(labels > 0), ratio=1.0)
  g = jax.grad(lambda x: ops.ssd_loss(x, zeros, labels, zeros, hard_negative_ratio=1.0)[0])(
      logits)
  g_kept = jax.grad(lambda x: (ops.softmax_cross_entropy(x, labels) * keep).sum() / 2)(logits)
  np.testing.assert_allclose(np.asarray(g), np.asarray(g_kept), rtol=1e-6, atol=1e-7)
  assert keep.sum() == 4 and (np.abs(np.asarray(g)).sum(-1) > 0).tolist() == keep.tolist()


def test_vmap_matches_batched_call():
  rng = np.random.default_rng(2)
  logits = _logits(rng, (3, 8), 4)
  labels = _labels(rng, (3, 8), 4)
  loss = rng.random((3, 8)).astype(np.float32)
  positive = labels > 0
  np.testing.assert_allclose(np.asarray(jax.vmap(ops.focal_loss)(logits, labels)),
                             np.asarray(ops.focal_loss(logits, labels)), rtol=1e-6)
  np.testing.assert_array_equal(
      np.asarray(jax.vmap(lambda l, p: ops.hard_negative_mask(l, p, ratio=2))(loss, positive)),
      np.asarray(ops.hard_negative_mask(loss, positive, ratio=2)))


# ---------------------------------------------------------------------------------------------
# Bad input.


def test_bad_inputs_raise_naming_the_argument():
  logits, labels = jnp.zeros((2, 5, 3)), jnp.zeros((2, 5), jnp.int32)
  off = jnp.zeros((2, 5, 4))
  for fn in (ops.softmax_cross_entropy, ops.focal_loss):
    with pytest.raises(ValueError, match="`labels`"):
      fn(logits, labels[:, :4])
    with pytest.raises(ValueError, match="`labels`"):
      fn(logits, labels[..., None])
    with pytest.raises(TypeError, match="`labels`"):
      fn(logits, labels.astype(jnp.float32))
  with pytest.raises(ValueError, match="`gamma`"):
    ops.focal_loss(logits, labels, gamma=-1.0)
  with pytest.raises(ValueError, match="`alpha`"):
    ops.focal_loss(logits, labels, alpha=0.0)
  for fn in (ops.l1_loss, ops.smooth_l1_loss):
    with pytest.raises(ValueError, match="`predictions`"):
      fn(off, off[..., :3])
  with pytest.raises(ValueError, match="`delta`"):
    ops.smooth_l1_loss(off, off, delta=0.0)
  with pytest.raises(ValueError, match="`positive`"):
    ops.hard_negative_mask(jnp.zeros((2, 5)), labels)  # ints, not bool
  with pytest.raises(ValueError, match="`positive`"):
    ops.hard_negative_mask(jnp.zeros((2, 5)), jnp.zeros((2, 4), bool))
  with pytest.raises(ValueError, match="`ratio`"):
    ops.hard_negative_mask(jnp.zeros((2, 5)), jnp.zeros((2, 5), bool), ratio=-1)
  with pytest.raises(ValueError, match="`classification`"):
    ops.ssd_loss(logits, off, labels, off, classification="bce")
  with pytest.raises(ValueError, match="`localization`"):
    ops.ssd_loss(logits, off, labels, off, localization="l2")
  with pytest.raises(ValueError, match="`offsets`"):
    ops.ssd_loss(logits, off[:, :4], labels, off)
  with pytest.raises(ValueError, match="`offsets`"):  # boxes need 4 offsets, not 5
    ops.ssd_loss(logits, jnp.zeros((2, 5, 5)), labels, jnp.zeros((2, 5, 5)))
  with pytest.raises(ValueError, match="`offset_targets`"):
    ops.ssd_loss(logits, off, labels, off[..., :2])
  with pytest.raises(ValueError, match="`labels`"):
    ops.ssd_loss(logits, off[:, :4], labels[:, :4], off[:, :4])


# ---------------------------------------------------------------------------------------------
# Labels out of [0, C): refused when concrete; ignored (negative) or NaN (>= C) when traced.


@pytest.mark.parametrize("loss", ["ce", "focal"])
@pytest.mark.parametrize("bad", [-1, -7, 4, 5])
def test_concrete_labels_out_of_range_raise(loss, bad):
  logits = np.zeros((3, 4), np.float32)
  labels = np.array([0, bad, 3], np.int32)
  fn = ops.softmax_cross_entropy if loss == "ce" else ops.focal_loss
  for lab in (labels, jnp.asarray(labels), labels.tolist()):
    with pytest.raises(ValueError, match=rf"`labels` must hold class ids in \[0, 4\).*found "
                       rf"{bad}\."):
      fn(logits, lab)
  off = np.zeros((3, 4), np.float32)
  with pytest.raises(ValueError, match=rf"`labels`.*\[0, 4\).*found {bad}\."):
    ops.ssd_loss(logits, off, labels, off, classification=loss)


@pytest.mark.parametrize("shape", [(7,), (2, 3, 5)], ids=str)
@pytest.mark.parametrize("gamma,alpha", [(2.0, 0.25), (0.0, 1.0)])
def test_traced_labels_out_of_range_match_oracle(shape, gamma, alpha):
  # -1 and -3 are ignored (loss 0), 6 and 9 are NaN; the oracle follows the same contract.
  rng = np.random.default_rng(len(shape))
  logits = _logits(rng, shape, 6)
  labels = rng.choice(np.array([-3, -1, 0, 2, 5, 6, 9], np.int32), shape)
  ce = jax.jit(ops.softmax_cross_entropy)(logits, labels)
  focal = jax.jit(lambda x, y: ops.focal_loss(x, y, gamma=gamma, alpha=alpha))(logits, labels)
  want_ce = ref.softmax_cross_entropy(logits, labels)
  want_focal = ref.focal_loss(logits, labels, gamma=gamma, alpha=alpha)
  assert np.all(want_ce[labels < 0] == 0) and np.all(np.isnan(want_ce[labels >= 6]))
  np.testing.assert_allclose(_f64(ce), want_ce, rtol=1e-5, atol=1e-6)  # NaN where NaN
  np.testing.assert_allclose(_f64(focal), want_focal, rtol=1e-5, atol=1e-6)
  # The ignored elements get no gradient; the kept ones get theirs.
  g = jax.jit(jax.grad(lambda x, y: jnp.sum(ops.softmax_cross_entropy(x, y))))(logits, labels)
  assert np.all(np.asarray(g)[labels < 0] == 0)
  keep = (labels >= 0) & (labels < 6)
  g_keep = jax.grad(lambda x: jnp.sum(ops.softmax_cross_entropy(x, np.where(keep, labels, 0))
                                      * keep))(logits)
  np.testing.assert_allclose(np.asarray(g)[keep], np.asarray(g_keep)[keep], rtol=1e-6)
  # vmap and grad trace the labels too.
  vm = jax.vmap(ops.softmax_cross_entropy)(logits.reshape(-1, 1, 6), labels.reshape(-1, 1))
  np.testing.assert_allclose(_f64(vm).reshape(shape), want_ce, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("classification", ["ce", "focal"])
@pytest.mark.parametrize("hard_negative_ratio", [None, 1.0])
def test_traced_ssd_loss_ignores_negative_labels(classification, hard_negative_ratio):
  rng = np.random.default_rng(4)
  shape = (2, 12)
  logits = _logits(rng, shape, 4)
  labels = _labels(rng, shape, 4, p_background=0.6)
  labels[0, 1], labels[1, 0] = 2, 0  # at least one positive and one negative
  ignored = np.zeros(shape, bool)
  ignored[0, [0, 5]] = ignored[1, [3, 4, 11]] = True
  labels = np.where(ignored, -1, labels).astype(np.int32)
  off = rng.normal(size=shape + (4,)).astype(np.float32)
  tgt = rng.normal(size=shape + (4,)).astype(np.float32)
  kw = dict(classification=classification, hard_negative_ratio=hard_negative_ratio,
            localization="smooth_l1")
  loss, parts = jax.jit(lambda *a: ops.ssd_loss(*a, **kw))(logits, off, labels, tgt)
  want, want_parts = ref.ssd_loss(logits, off, labels, tgt, **kw)
  np.testing.assert_allclose(float(loss), want, rtol=1e-5)
  assert int(parts["num_positives"]) == want_parts["num_positives"] == np.sum(labels > 0)
  # The same as dropping the ignored anchors (one image at a time: they differ in count).
  kept = [ops.ssd_loss(logits[b][~ignored[b]], off[b][~ignored[b]], labels[b][~ignored[b]],
                       tgt[b][~ignored[b]], **kw)[1] for b in range(2)]
  num_pos = sum(int(k["num_positives"]) for k in kept)
  cls = sum(float(k["classification"]) * max(int(k["num_positives"]), 1) for k in kept)
  np.testing.assert_allclose(float(parts["classification"]) * max(num_pos, 1), cls, rtol=1e-5)
  # No gradient flows to the ignored anchors, logits or offsets.
  g_logits, g_off = jax.jit(jax.grad(lambda x, o, y: ops.ssd_loss(x, o, y, tgt, **kw)[0],
                                     argnums=(0, 1)))(logits, off, labels)
  assert np.all(np.asarray(g_logits)[ignored] == 0) and np.all(np.asarray(g_off)[ignored] == 0)
  # A label >= C makes the loss NaN.
  too_big = labels.copy()
  too_big[0, 1] = 4
  assert np.isnan(float(jax.jit(lambda *a: ops.ssd_loss(*a, **kw)[0])(logits, off, too_big,
                                                                      tgt)))


def test_traced_hyper_parameters_raise_type_error_naming_them():
  logits, labels = jnp.zeros((2, 3)), jnp.zeros(2, jnp.int32)
  off = jnp.zeros((2, 4))
  cases = [
      ("gamma", lambda v: ops.focal_loss(logits, labels, gamma=v)),
      ("alpha", lambda v: ops.focal_loss(logits, labels, alpha=v)),
      ("delta", lambda v: ops.smooth_l1_loss(off, off, delta=v)),
      ("ratio", lambda v: ops.hard_negative_mask(jnp.zeros(2), jnp.ones(2, bool), ratio=v)),
      ("focal_gamma", lambda v: ops.ssd_loss(logits, off, labels, off, classification="focal",
                                             focal_gamma=v)[0]),
      ("focal_alpha", lambda v: ops.ssd_loss(logits, off, labels, off, classification="focal",
                                             focal_alpha=v)[0]),
      ("hard_negative_ratio", lambda v: ops.ssd_loss(logits, off, labels, off,
                                                     hard_negative_ratio=v)[0]),
  ]
  for name, fn in cases:
    with pytest.raises(TypeError, match=rf"`{name}` must be a .*Python number, got .*Trace"):
      jax.jit(fn)(1.0)
    fn(1.0)  # the same value as a Python number is fine
  for name, fn in cases[:3]:
    with pytest.raises(ValueError, match=f"`{name}`"):
      fn(math.nan)


def test_reexported_from_ops():
  for name in losses.__all__:
    assert getattr(ops, name) is getattr(losses, name)


@settings(max_examples=30, deadline=None)
@given(st.integers(0, 2**31 - 1), st.integers(2, 5), st.booleans(),
       st.sampled_from([1e-3, 1.0]), st.floats(0.1, 8.0))
def test_soft_dice_matches_oracle(seed, num_classes, skip_background, smooth, scale):
  rng = np.random.default_rng(seed)
  shape = (2, int(rng.integers(1, 5)), int(rng.integers(1, 5)))
  logits = (scale * rng.standard_normal(shape + (num_classes,))).astype(np.float32)
  labels = rng.integers(0, num_classes, shape)
  got = float(ops.soft_dice_loss(logits, labels, skip_background=skip_background,
                                 smooth=smooth))
  want = ref.soft_dice_loss(logits, labels, skip_background=skip_background, smooth=smooth)
  assert got == pytest.approx(want, abs=1e-5)
  assert 0.0 <= got <= 1.0


def test_soft_dice_hand_values_and_gradient():
  # Perfect, confident predictions: Dice 1 for every class, loss 0.
  labels = jnp.array([[0, 1], [2, 2]])
  perfect = 30.0 * jax.nn.one_hot(labels, 3)
  assert float(ops.soft_dice_loss(perfect, labels, smooth=1e-6)) == pytest.approx(0, abs=1e-5)
  # Uniform probabilities over 2 classes, one pixel of each: Dice_1 = 2 * .5 / (1 + 1) = .5.
  two = jnp.zeros((2, 2))
  assert float(ops.soft_dice_loss(two, jnp.array([0, 1]), smooth=1e-9)) == pytest.approx(0.5)
  # With the background: (Dice_0 + Dice_1) / 2 = .5 as well.
  assert float(ops.soft_dice_loss(two, jnp.array([0, 1]), skip_background=False,
                                  smooth=1e-9)) == pytest.approx(0.5)
  g = jax.grad(lambda x: ops.soft_dice_loss(x, labels))(jnp.zeros((2, 2, 3)))
  assert bool(jnp.all(jnp.isfinite(g)))
  # Raising the true class's logit lowers the loss.
  assert float(g[0, 1, 1]) < 0 and float(g[1, 0, 2]) < 0


def test_soft_dice_bad_inputs():
  with pytest.raises(ValueError, match="labels"):
    ops.soft_dice_loss(jnp.zeros((2, 3)), jnp.array([0, 1, 2]))
  with pytest.raises(TypeError, match="labels"):
    ops.soft_dice_loss(jnp.zeros((2, 3)), jnp.array([0.0, 1.0]))
  with pytest.raises(ValueError, match="smooth"):
    ops.soft_dice_loss(jnp.zeros((2, 3)), jnp.array([0, 1]), smooth=0.0)
  with pytest.raises(ValueError, match="at least 2 classes"):
    ops.soft_dice_loss(jnp.zeros((2, 1)), jnp.array([0, 0]))
  with pytest.raises(ValueError, match="labels"):
    ops.soft_dice_loss(jnp.zeros((2, 3)), jnp.array([0, 3]))
