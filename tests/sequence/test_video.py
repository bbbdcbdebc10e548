"""Video: the clips move as their motion label says, the factorised joint output, the four
models' shapes, accuracy bookkeeping."""

from __future__ import annotations

import jax
import numpy as np
import optax
import pytest

from jaxvision import models, video


def _square_digit():
  d = np.zeros((1, 28, 28), np.uint8)
  d[0, 8:20, 8:20] = 255
  return d


def _centre_of_mass(frame):
  yy, xx = np.mgrid[:frame.shape[0], :frame.shape[1]]
  w = frame.astype(np.float64)
  return np.array([(w * yy).sum() / w.sum(), (w * xx).sum() / w.sum()])


def test_clips_move_as_labelled():
  c = video.moving_digit_clips(_square_digit(), np.array([7]), 60, frames=8, size=32, seed=1)
  assert c["clip"].shape == (60, 8, 32, 32, 1) and c["clip"].dtype == np.uint8
  assert np.all(c["label"] == 7 * 10 + c["motion"]) and np.all(c["digit"] == 7)
  for clip, m in zip(c["clip"][..., 0], c["motion"]):
    a, b = _centre_of_mass(clip[0]), _centre_of_mass(clip[-1])
    mass0, mass1 = clip[0].sum(), clip[-1].sum()
    if m < 8:      # 14 px along the compass direction (north = up)
      ang = np.deg2rad(45 * m)
      np.testing.assert_allclose(b - a, 14 * np.array([-np.sin(ang), np.cos(ang)]), atol=0.6)
    elif m == 8:   # rotation in place
      np.testing.assert_allclose(b, a, atol=0.8)
    else:          # growth in place: more ink
      np.testing.assert_allclose(b, a, atol=0.8)
      assert mass1 > 2.5 * mass0
  # Deterministic per (seed, index), not per count.
  d = video.moving_digit_clips(_square_digit(), np.array([7]), 10, seed=1)
  np.testing.assert_array_equal(d["clip"], c["clip"][:10])


def test_clip_argument_errors():
  with pytest.raises(ValueError, match="digits"):
    video.moving_digit_clips(np.zeros((2, 20, 20)), np.zeros(2), 3)
  with pytest.raises(ValueError, match="fit"):
    video.moving_digit_clips(_square_digit(), np.array([1]), 3, frames=12, size=24)


def test_joint_logits_factorise():
  rng = np.random.default_rng(0)
  d, m = rng.normal(size=(5, 10)), rng.normal(size=(5, 10))
  j = np.asarray(models.video.joint_logits(d, m))
  assert j.shape == (5, 100) and j[2, 3 * 10 + 7] == pytest.approx(d[2, 3] + m[2, 7])
  y_d, y_m = rng.integers(0, 10, 5), rng.integers(0, 10, 5)
  joint_ce = optax.softmax_cross_entropy_with_integer_labels(j, y_d * 10 + y_m)
  split_ce = (optax.softmax_cross_entropy_with_integer_labels(d, y_d)
              + optax.softmax_cross_entropy_with_integer_labels(m, y_m))
  np.testing.assert_allclose(joint_ce, split_ce, rtol=1e-5)
  assert np.all(j.argmax(-1) == d.argmax(-1) * 10 + m.argmax(-1))


@pytest.mark.parametrize("name", ["VideoLSTMTiny", "Video3DTiny", "Video2Plus1DTiny",
                                  "VideoSingleFrameTiny"])
def test_models_give_joint_logits(name):
  m = getattr(models, name)(num_classes=100)
  x = np.zeros((2, 8, 32, 32, 1), np.float32)
  out = jax.eval_shape(lambda: m.init_with_output(jax.random.key(0), x)[0])
  assert out.shape == (2, 100)


def test_single_frame_model_sees_one_frame_only():
  m = models.VideoSingleFrameTiny()
  x = np.random.default_rng(0).uniform(size=(1, 8, 32, 32, 1)).astype(np.float32)
  v = jax.jit(m.init)(jax.random.key(0, impl="rbg"), x)
  y = x.copy()
  y[:, [0, 1, 2, 3, 5, 6, 7]] = 0       # only the middle frame (4) kept
  apply = jax.jit(m.apply)
  np.testing.assert_allclose(apply(v, x), apply(v, y), atol=1e-6)


def test_2plus1d_keeps_the_parameter_count_of_3d():
  x = np.zeros((1, 8, 32, 32, 1), np.float32)
  count = lambda m: models.count_params(jax.eval_shape(m.init, jax.random.key(0), x)["params"])  # noqa: E731
  a, b = count(models.Video3D()), count(models.Video2Plus1D())
  assert abs(a - b) / a < 0.1


def test_factorised_accuracy_by_hand():
  data = {"digit": np.array([1, 2, 3, 4]), "motion": np.array([0, 8, 9, 9])}
  preds = np.array([10, 28, 39, 48])    # (1,0) right; (2,8) right; (3,9) right; (4,8) wrong m
  acc = video.factorised_accuracy(preds, data)
  assert acc["digit_accuracy"] == 1.0 and acc["motion_accuracy"] == 0.75
  assert acc["motion_accuracy_per_motion"] == {"east": 1.0, "rotate": 1.0, "grow": 0.5}
