"""Tests of the NMS kernel (``jaxvision.kernels.nms``) against NumPy oracles.

Two oracles, so that indices can be compared exactly on any input:

* ``_nms_f32`` below: greedy NMS on the float32 IoU matrix ``tests.kernels.iou_f32``,
  computed in NumPy in the kernel's arithmetic order (``inter / (area_i + area_j - inter)``,
  each step a correctly rounded float32 operation). The kernel must agree with it bit for
  bit, including IoUs that land exactly on the threshold, so random real-valued boxes can be
  used.
* ``jaxvision.reference.nms.nms`` (float64) on integer-valued boxes with thresholds that are
  multiples of 1/20: there every IoU is either exactly the threshold or far (> 1e-5) from it,
  so float32 and float64 decide the same.

``_NMSKernelChecks`` holds the checks; ``TestNMSKernelInterpret`` runs them with the Pallas
interpreter (CPU, what CI runs) and ``TestNMSKernelCompiled`` compiles them on a GPU. Small
blocks (via ``NMSConfig``) keep interpret mode fast and make sizes cross block edges.
``test_lowers_to_triton_for_gpu`` lowers both kernels for CUDA on the CPU machine (Pallas ->
Triton IR), so a kernel only the interpreter can run fails CI.
"""

from __future__ import annotations

import functools
import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from jaxvision.kernels.nms import NMSConfig, keep_from_mask, nms, suppression_mask
from jaxvision.reference import nms as ref
from tests.kernels import assert_lowers_to_triton, iou_f32

_SMALL = NMSConfig(block_rows=16, block_words=1)
_OTHER = NMSConfig(block_rows=8, block_words=2)
_XLA = NMSConfig(block_rows=16, block_words=1, keep_pass="xla")  # the plain-JAX greedy pass


# ---------------------------------------------------------------------------------------------
# Float32 oracles.


def _iou_f32(boxes: np.ndarray) -> np.ndarray:
  """``[N, 4]`` -> ``[N, N]`` float32 IoU, every operation in float32, the kernel's order."""
  return iou_f32(boxes, boxes)


def _precedence(scores, score_threshold):
  scores = np.asarray(scores)
  with np.errstate(invalid="ignore"):
    idx = np.flatnonzero((scores > score_threshold) & ~np.isnan(scores))
  return idx[np.argsort(-scores[idx], kind="stable")]  # -0.0 == 0.0 for a comparison sort


def _nms_f32(boxes, scores, *, iou_threshold, max_output_size, score_threshold=-np.inf):
  iou = _iou_f32(boxes)
  thr = np.float32(iou_threshold)
  suppressed = np.zeros(len(scores), bool)
  keep = []
  for i in _precedence(scores, score_threshold):
    if len(keep) >= max_output_size:
      break
    if not suppressed[i]:
      keep.append(int(i))
      suppressed |= iou[i] > thr
  return np.asarray(keep, np.int64)


def _unpack(mask: np.ndarray, n: int) -> np.ndarray:
  """``[.., N, W]`` uint32 -> ``[.., N, N]`` bool."""
  bits = (mask[..., :, :, None] >> np.arange(32, dtype=np.uint32)) & 1
  return bits.reshape(mask.shape[:-1] + (-1,))[..., :n].astype(bool)


# ---------------------------------------------------------------------------------------------
# Inputs.


def _boxes(rng, shape, kind="uniform", degenerate=0.0, integer=False):
  """Random ``shape + (4,)`` float32 xyxy boxes: uniform or clustered (heavy overlaps)."""
  n = shape[-1]
  if kind == "uniform":
    xy = rng.uniform(0, 100, shape + (2,))
    wh = rng.uniform(1, 40, shape + (2,))
  else:
    centres = rng.uniform(20, 80, shape[:-1] + (3, 2))
    sizes = rng.uniform(8, 38, shape[:-1] + (3, 2))
    which = rng.integers(0, 3, shape)
    pick = lambda a: np.take_along_axis(a, np.broadcast_to(which[..., None], shape + (2,)),
                                        axis=-2)
    wh = np.maximum(pick(sizes) + rng.uniform(-3, 3, shape + (2,)), 1)
    xy = pick(centres) - wh / 2 + rng.uniform(-3, 3, shape + (2,))
  if integer:
    xy, wh = np.round(xy), np.maximum(np.round(wh), 1)
  boxes = np.concatenate([xy, xy + wh], axis=-1)
  if degenerate and n:
    bad = rng.random(shape) < degenerate
    mode = rng.integers(0, 3, shape)
    zero_w, zero_h, inv = bad & (mode == 0), bad & (mode == 1), bad & (mode == 2)
    boxes[..., 2] = np.where(zero_w, boxes[..., 0], boxes[..., 2])
    boxes[..., 3] = np.where(zero_h, boxes[..., 1], boxes[..., 3])
    boxes = np.where(inv[..., None], boxes[..., [2, 3, 0, 1]], boxes)
  return boxes.astype(np.float32)


def _scores(rng, shape, ties=False, nan_frac=0.0):
  scores = rng.integers(0, 6, shape) / 8 if ties else rng.random(shape)
  scores = scores.astype(np.float32)
  if ties:  # signed zeros must tie with each other
    scores = np.where((scores == 0) & (rng.random(shape) < 0.5), np.float32(-0.0), scores)
  scores[rng.random(shape) < nan_frac] = np.nan
  return scores


def _assert_nms(indices, num_valid, expected, k):
  indices, num_valid = np.asarray(indices), np.asarray(num_valid)
  assert indices.shape == (k,) and indices.dtype == np.int32
  assert num_valid.shape == () and num_valid.dtype == np.int32
  assert int(num_valid) == len(expected), (indices.tolist(), expected.tolist())
  np.testing.assert_array_equal(indices[:len(expected)], expected)
  assert (indices[len(expected):] == -1).all()


# ---------------------------------------------------------------------------------------------
# The checks.


class _NMSKernelChecks:
  """Checks of the NMS kernel; subclasses pick interpret mode or compilation."""

  INTERPRET = False

  def _nms(self, boxes, scores, config=_SMALL, **kwargs):
    return nms(boxes, scores, config=config, interpret=self.INTERPRET, **kwargs)

  @pytest.mark.parametrize("n,config", [(1, _SMALL), (5, _SMALL), (33, _SMALL), (70, _OTHER),
                                        (200, _SMALL), (150, NMSConfig())])
  def test_mask_matches_float32_iou(self, n, config):
    rng = np.random.default_rng(n)
    for kind, thr in (("uniform", 0.3), ("clustered", 0.5), ("clustered", 0.0)):
      boxes = _boxes(rng, (2, n), kind, degenerate=0.1)
      mask = np.asarray(suppression_mask(boxes, iou_threshold=thr, config=config,
                                         interpret=self.INTERPRET))
      assert mask.shape == (2, n, -(-n // 32)) and mask.dtype == np.uint32
      for b in range(2):
        expected = np.triu(_iou_f32(boxes[b]) > np.float32(thr), k=1)
        np.testing.assert_array_equal(_unpack(mask[b], n), expected)
        assert not _unpack(mask[b], 32 * mask.shape[-1])[:, n:].any()  # no bits past N

  def test_mask_empty(self):
    for shape in ((2, 0, 4), (0, 5, 4)):
      mask = suppression_mask(np.zeros(shape, np.float32), iou_threshold=0.5,
                              interpret=self.INTERPRET)
      assert mask.shape == shape[:2] + (-(-shape[1] // 32),) and mask.dtype == jnp.uint32

  @pytest.mark.parametrize("n,config", [(1, _SMALL), (2, _XLA), (31, _SMALL), (33, _XLA),
                                        (64, _OTHER), (200, _SMALL), (200, _XLA)])
  def test_matches_float32_oracle(self, n, config):
    rng = np.random.default_rng(1000 + n)
    k = max(n // 2, 1)
    for kind, ties, thr, score_thr in (("uniform", False, 0.5, -np.inf),
                                       ("clustered", True, 0.45, 0.25),
                                       ("clustered", False, 0.7, -np.inf),
                                       ("uniform", True, 0.1, 0.0)):
      boxes = _boxes(rng, (3, n), kind, degenerate=0.1)
      scores = _scores(rng, (3, n), ties=ties, nan_frac=0.1)
      indices, num_valid = self._nms(boxes, scores, config, iou_threshold=thr,
                                     max_output_size=k, score_threshold=score_thr)
      for b in range(3):
        expected = _nms_f32(boxes[b], scores[b], iou_threshold=thr, max_output_size=k,
                            score_threshold=score_thr)
        _assert_nms(indices[b], num_valid[b], expected, k)

  @pytest.mark.parametrize("n", [7, 100])
  def test_matches_float64_reference_on_exact_inputs(self, n):
    rng = np.random.default_rng(2000 + n)
    for thr in (0.0, 0.25, 0.5, 0.65, 1.0):
      boxes = _boxes(rng, (2, n), "clustered", degenerate=0.1, integer=True)
      scores = _scores(rng, (2, n), ties=True)
      indices, num_valid = self._nms(boxes, scores, iou_threshold=thr, max_output_size=n + 3)
      for b in range(2):
        expected = ref.nms(boxes[b], scores[b], iou_threshold=thr)
        _assert_nms(indices[b], num_valid[b], expected, n + 3)

  def test_threshold_is_strict_on_float32_iou(self):
    rng = np.random.default_rng(3)
    boxes = _boxes(rng, (1, 40), "clustered")
    scores = _scores(rng, (1, 40))
    iou = _iou_f32(boxes[0])
    order = _precedence(scores[0], -np.inf)
    # Thresholds that equal a float32 IoU exactly, and the float32 values next to them.
    for value in (iou[order[0], order[1]], iou[order[0], order[5]], np.float32(0.5)):
      for thr in (value, np.nextafter(value, np.float32(0)), np.nextafter(value, np.float32(1))):
        indices, num_valid = self._nms(boxes, scores, iou_threshold=float(thr),
                                       max_output_size=40)
        _assert_nms(indices[0], num_valid[0],
                    _nms_f32(boxes[0], scores[0], iou_threshold=thr, max_output_size=40), 40)
    # IoU exactly 1/2: not suppressed at threshold 0.5 (strict), suppressed just below.
    pair = np.array([[[0, 0, 2, 1], [0, 0, 1, 1]]], np.float32)
    for thr, expected in ((0.5, [0, 1]), (0.49, [0])):
      indices, num_valid = self._nms(pair, np.array([[0.9, 0.8]], np.float32),
                                     iou_threshold=thr, max_output_size=2)
      _assert_nms(indices[0], num_valid[0], np.array(expected), 2)

  def test_ties_signed_zeros_and_nan(self):
    boxes = np.array([[0, 0, 10, 10]] * 6, np.float32)  # all identical: IoU 1
    for scores, expected in (([0.5, 0.5, 0.5, 0.5, 0.5, 0.5], [0]),
                             ([0.0, -0.0, 0.0, -0.0, np.nan, -1.0], [0]),
                             ([-0.0, 0.0, np.nan, 0.0, 0.0, 0.0], [0]),
                             ([np.nan, -0.0, 0.7, 0.7, 0.0, 0.7], [2])):
      indices, num_valid = self._nms(boxes, np.array(scores, np.float32), iou_threshold=0.5,
                                     max_output_size=6)
      _assert_nms(indices, num_valid, np.array(expected), 6)
    # Disjoint boxes: all kept, in precedence order (ties to the lower index, -0.0 == 0.0).
    disjoint = np.array([[20 * i, 0, 20 * i + 10, 10] for i in range(6)], np.float32)
    scores = np.array([0.0, 0.5, -0.0, np.nan, 0.5, 0.0], np.float32)
    indices, num_valid = self._nms(disjoint, scores, iou_threshold=0.5, max_output_size=6)
    _assert_nms(indices, num_valid, np.array([1, 4, 0, 2, 5]), 6)
    indices, num_valid = self._nms(disjoint, scores, iou_threshold=0.5, max_output_size=6,
                                   score_threshold=0.0)
    _assert_nms(indices, num_valid, np.array([1, 4]), 6)

  def test_degenerate_boxes_never_suppress(self):
    boxes = np.array([[0, 0, 10, 10], [0, 0, 0, 10], [0, 0, 10, 0], [10, 10, 0, 0],
                      [0, 0, 10, 10], [5, 5, 5, 5]], np.float32)
    scores = np.array([0.9, 0.95, 0.94, 0.93, 0.5, 0.92], np.float32)
    indices, num_valid = self._nms(boxes, scores, iou_threshold=0.0, max_output_size=6)
    _assert_nms(indices, num_valid, np.array([1, 2, 3, 5, 0]), 6)

  def test_sizes_and_padding(self):
    rng = np.random.default_rng(5)
    boxes, scores = _boxes(rng, (2, 33)), _scores(rng, (2, 33))
    for k in (0, 1, 50):
      indices, num_valid = self._nms(boxes, scores, iou_threshold=0.5, max_output_size=k)
      assert indices.shape == (2, k) and num_valid.shape == (2,)
      for b in range(2):
        _assert_nms(indices[b], num_valid[b],
                    _nms_f32(boxes[b], scores[b], iou_threshold=0.5, max_output_size=k), k)
    for shape in ((0, 4), (3, 0, 4), (0, 2, 4)):
      indices, num_valid = self._nms(np.zeros(shape, np.float32),
                                     np.zeros(shape[:-1], np.float32), iou_threshold=0.5,
                                     max_output_size=4)
      assert indices.shape == shape[:-2] + (4,) and (np.asarray(indices) == -1).all()
      assert num_valid.shape == shape[:-2] and (np.asarray(num_valid) == 0).all()
    # All candidates filtered out.
    indices, num_valid = self._nms(boxes, scores, iou_threshold=0.5, max_output_size=50,
                                   score_threshold=2.0)
    assert (np.asarray(indices) == -1).all() and (np.asarray(num_valid) == 0).all()

  def test_batched_equals_per_image(self):
    rng = np.random.default_rng(6)
    boxes = _boxes(rng, (2, 3, 45), "clustered", degenerate=0.05)
    scores = _scores(rng, (2, 3, 45), ties=True, nan_frac=0.05)
    indices, num_valid = self._nms(boxes, scores, iou_threshold=0.4, max_output_size=20)
    assert indices.shape == (2, 3, 20) and num_valid.shape == (2, 3)
    for a in range(2):
      for b in range(3):
        one, nv = self._nms(boxes[a, b], scores[a, b], iou_threshold=0.4, max_output_size=20)
        np.testing.assert_array_equal(indices[a, b], one)
        assert int(num_valid[a, b]) == int(nv)

  def test_jit_and_low_precision_inputs(self):
    rng = np.random.default_rng(7)
    boxes = _boxes(rng, (2, 40), "clustered")
    scores = _scores(rng, (2, 40), ties=True)
    fn = jax.jit(functools.partial(self._nms, iou_threshold=0.5, max_output_size=10))
    expected = self._nms(boxes, scores, iou_threshold=0.5, max_output_size=10)
    for got, want in zip(fn(boxes, scores), expected):
      np.testing.assert_array_equal(got, want)
    for dtype in (jnp.bfloat16, jnp.float16):
      low_boxes, low_scores = jnp.asarray(boxes, dtype), jnp.asarray(scores, dtype)
      indices, num_valid = self._nms(low_boxes, low_scores, iou_threshold=0.5,
                                     max_output_size=10)
      up_boxes, up_scores = (np.asarray(x.astype(jnp.float32)) for x in (low_boxes, low_scores))
      for b in range(2):
        _assert_nms(indices[b], num_valid[b],
                    _nms_f32(up_boxes[b], up_scores[b], iou_threshold=0.5,
                             max_output_size=10), 10)

  @settings(max_examples=6, deadline=None)
  @given(n=st.integers(0, 90), k=st.sampled_from([1, 10, 100]),
         thr=st.sampled_from([0.0, 0.3, 0.5, 0.8]), config=st.sampled_from([_SMALL, _XLA]),
         seed=st.integers(0, 2**31))
  def test_hypothesis_shapes(self, n, k, thr, config, seed):
    rng = np.random.default_rng(seed)
    boxes = _boxes(rng, (1, n), "clustered" if seed % 2 else "uniform", degenerate=0.1)
    scores = _scores(rng, (1, n), ties=bool(seed % 3), nan_frac=0.1)
    indices, num_valid = self._nms(boxes, scores, config, iou_threshold=thr, max_output_size=k)
    expected = _nms_f32(boxes[0], scores[0], iou_threshold=thr, max_output_size=k)
    _assert_nms(indices[0], num_valid[0], expected, k)
    kept = boxes[0][expected]
    assert not np.triu(_iou_f32(kept) > np.float32(thr), k=1).any()

  def test_keep_from_mask_matches_loop(self):
    rng = np.random.default_rng(8)
    for n, max_kepts in ((1, (None,)), (45, (None, 3))):
      w = -(-n // 32)
      dense = np.triu(rng.random((3, n, n)) < 0.1, k=1)
      padded = np.zeros((3, n, 32 * w), bool)
      padded[..., :n] = dense
      weights = np.left_shift(np.uint32(1), np.arange(32, dtype=np.uint32))
      mask = (padded.reshape(3, n, w, 32) * weights).sum(-1, dtype=np.uint32)
      np.testing.assert_array_equal(_unpack(mask, n), dense)
      valid = rng.random((3, n)) < 0.8
      for max_kept, config in itertools.product(max_kepts, (_SMALL, _XLA)):
        keep = np.asarray(keep_from_mask(mask, valid, max_kept=max_kept, config=config,
                                         interpret=self.INTERPRET))
        for b in range(3):
          removed, expected = np.zeros(n, bool), np.zeros(n, bool)
          for i in range(n):
            if valid[b, i] and not removed[i] and expected.sum() < (max_kept or n):
              expected[i] = True
              removed |= dense[b, i]
          np.testing.assert_array_equal(keep[b], expected)

  def test_bad_arguments(self):
    for bad in (0, 3, -8, 2.0, True, None):
      with pytest.raises(ValueError, match="block_rows"):
        NMSConfig(block_rows=bad)
      with pytest.raises(ValueError, match="block_words"):
        NMSConfig(block_words=bad)
    with pytest.raises(ValueError, match="keep_pass"):
      NMSConfig(keep_pass="host")
    for bad in (0, 3, 64):
      with pytest.raises(ValueError, match="num_warps"):
        NMSConfig(num_warps=bad)
    boxes, scores = np.zeros((1, 3, 4), np.float32), np.zeros((1, 3), np.float32)
    with pytest.raises(ValueError, match="iou_threshold"):
      self._nms(boxes, scores, iou_threshold=1.5, max_output_size=2)
    with pytest.raises(ValueError, match="max_output_size"):
      self._nms(boxes, scores, iou_threshold=0.5, max_output_size=-1)
    with pytest.raises(ValueError, match="scores"):
      self._nms(boxes, scores[:, :2], iou_threshold=0.5, max_output_size=2)
    with pytest.raises(ValueError, match="sorted_boxes"):
      suppression_mask(boxes[0], iou_threshold=0.5, interpret=self.INTERPRET)
    with pytest.raises(ValueError, match="valid"):
      keep_from_mask(np.zeros((1, 3, 1), np.uint32), np.ones((1, 4), bool),
                     interpret=self.INTERPRET)


class TestNMSKernelInterpret(_NMSKernelChecks):
  INTERPRET = True


@pytest.mark.skipif(jax.default_backend() != "gpu", reason="compiled kernels need a GPU")
class TestNMSKernelCompiled(_NMSKernelChecks):
  INTERPRET = False


@pytest.mark.parametrize("config", [NMSConfig(), _XLA])
def test_lowers_to_triton_for_gpu(config):
  boxes = jax.ShapeDtypeStruct((2, 300, 4), jnp.float32)
  scores = jax.ShapeDtypeStruct((2, 300), jnp.float32)
  assert_lowers_to_triton(
      functools.partial(nms, iou_threshold=0.5, max_output_size=50, config=config), boxes,
      scores)
