"""Tests of the IoU / GIoU kernel (``jaxvision.kernels.iou``) against float64 oracles.

IoU is checked against ``jaxvision.reference.nms.box_iou`` (to float32 tolerance) and, bit for
bit, against ``tests.kernels.iou_f32`` (the same formula evaluated step by step in NumPy
float32: the kernel must not fuse multiply-adds); GIoU against the float64 formula written
out here (``IoU - (C - U) / C``, enclosing box from the raw corners, width and height
clipped at 0, penalty 0 where ``C = 0``). ``_IoUKernelChecks`` holds the checks;
``TestIoUKernelInterpret`` runs them with the Pallas interpreter (CPU, what CI runs) and
``TestIoUKernelCompiled`` compiles them on a GPU. Small blocks keep interpret mode fast and
make the sizes cross block edges. ``test_lowers_to_triton_for_gpu`` lowers the kernel for CUDA
on the CPU machine (Pallas -> Triton IR), so a kernel only the interpreter can run fails CI.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from jaxvision.kernels.iou import IoUConfig, iou_matrix
from jaxvision.reference import nms as ref
from tests.kernels import assert_lowers_to_triton, iou_f32

_SMALL = IoUConfig(block_n=8, block_m=16)
_RTOL, _ATOL = 2e-6, 1e-6  # float32 IoU of well-scaled boxes (seen: ~1e-7)


def _giou64(a: np.ndarray, b: np.ndarray) -> np.ndarray:
  """``[N, 4]``, ``[M, 4]`` -> ``[N, M]`` float64 GIoU, written from the definition."""
  a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
  iou = ref.box_iou(a, b)
  iw = np.minimum(a[:, None, 2], b[None, :, 2]) - np.maximum(a[:, None, 0], b[None, :, 0])
  ih = np.minimum(a[:, None, 3], b[None, :, 3]) - np.maximum(a[:, None, 1], b[None, :, 1])
  inter = np.maximum(iw, 0) * np.maximum(ih, 0)
  area = lambda x: np.maximum(x[:, 2] - x[:, 0], 0) * np.maximum(x[:, 3] - x[:, 1], 0)
  union = area(a)[:, None] + area(b)[None, :] - inter
  cw = np.maximum(a[:, None, 2], b[None, :, 2]) - np.minimum(a[:, None, 0], b[None, :, 0])
  ch = np.maximum(a[:, None, 3], b[None, :, 3]) - np.minimum(a[:, None, 1], b[None, :, 1])
  c = np.maximum(cw, 0) * np.maximum(ch, 0)
  with np.errstate(divide="ignore", invalid="ignore"):
    penalty = np.where(c > 0, (c - union) / np.where(c > 0, c, 1), 0.0)
  return iou - penalty


def _oracle(b1, b2, kind):
  fn = ref.box_iou if kind == "iou" else _giou64
  return np.stack([fn(x, y) for x, y in zip(b1, b2)]) if len(b1) else np.zeros(
      (0, b1.shape[1], b2.shape[1]))


def _boxes(rng, shape, kind="uniform", degenerate=0.1):
  """Random ``shape + (4,)`` float32 xyxy boxes with some degenerate and inverted ones."""
  if kind == "uniform":
    xy = rng.uniform(-50, 100, shape + (2,))
    wh = rng.uniform(0.5, 40, shape + (2,))
  else:  # clustered around one object: heavy overlaps
    wh = rng.uniform(18, 22, shape + (2,))
    xy = 40 - wh / 2 + rng.uniform(-2, 2, shape + (2,))
  boxes = np.concatenate([xy, xy + wh], axis=-1)
  bad = rng.random(shape) < degenerate
  mode = rng.integers(0, 4, shape)
  boxes[..., 2] = np.where(bad & (mode == 0), boxes[..., 0], boxes[..., 2])  # zero width
  boxes[..., 3] = np.where(bad & (mode == 1), boxes[..., 1], boxes[..., 3])  # zero height
  boxes = np.where((bad & (mode == 2))[..., None], boxes[..., [2, 3, 0, 1]], boxes)  # inverted
  boxes = np.where((bad & (mode == 3))[..., None], boxes[..., [0, 0, 0, 0]], boxes)  # a point
  return boxes.astype(np.float32)


class _IoUKernelChecks:
  """Checks of the IoU kernel; subclasses pick interpret mode or compilation."""

  INTERPRET = False

  def _iou(self, b1, b2, kind="iou", config=_SMALL):
    return iou_matrix(b1, b2, kind=kind, config=config, interpret=self.INTERPRET)

  @pytest.mark.parametrize("kind", ["iou", "giou"])
  @pytest.mark.parametrize("shape,config", [((1, 1, 1), _SMALL), ((2, 5, 7), _SMALL),
                                            ((3, 37, 20), _SMALL), ((1, 70, 130), _SMALL),
                                            ((2, 100, 60), IoUConfig())])
  def test_matches_oracle(self, shape, config, kind):
    b, n, m = shape
    rng = np.random.default_rng([n, m, len(kind)])
    for box_kind in ("uniform", "clustered"):
      b1, b2 = _boxes(rng, (b, n), box_kind), _boxes(rng, (b, m), box_kind)
      got = self._iou(b1, b2, kind, config)
      assert got.shape == (b, n, m) and got.dtype == jnp.float32
      np.testing.assert_allclose(got, _oracle(b1, b2, kind), rtol=_RTOL, atol=_ATOL)
      if kind == "iou":
        for i in range(b):
          np.testing.assert_array_equal(got[i], iou_f32(b1[i], b2[i]))

  def test_empty(self):
    for b, n, m in ((2, 0, 5), (2, 5, 0), (0, 3, 3), (1, 0, 0)):
      for kind in ("iou", "giou"):
        got = self._iou(np.zeros((b, n, 4), np.float32), np.zeros((b, m, 4), np.float32), kind)
        assert got.shape == (b, n, m) and got.dtype == jnp.float32

  def test_degenerate_boxes_give_zero_not_nan(self):
    boxes = np.array([[[0, 0, 10, 10], [0, 0, 0, 10], [0, 0, 10, 0], [10, 10, 0, 0],
                       [5, 5, 5, 5], [0, 0, 0, 0]]], np.float32)
    iou = np.asarray(self._iou(boxes, boxes))
    expected = np.zeros((6, 6))
    expected[0, 0] = 1.0
    np.testing.assert_array_equal(iou[0], expected)
    giou = np.asarray(self._iou(boxes, boxes, "giou"))
    assert np.isfinite(giou).all()
    np.testing.assert_allclose(giou[0], _giou64(boxes[0], boxes[0]), atol=_ATOL)
    assert giou[0, 5, 5] == 0.0  # C = 0: no penalty

  def test_properties(self):
    rng = np.random.default_rng(1)
    b1 = _boxes(rng, (2, 45), "clustered", degenerate=0.2)
    iou = np.asarray(self._iou(b1, b1))
    np.testing.assert_array_equal(iou, np.swapaxes(iou, 1, 2))  # exactly symmetric
    assert (iou >= 0).all() and (iou <= 1).all()
    has_area = (b1[..., 2] > b1[..., 0]) & (b1[..., 3] > b1[..., 1])
    np.testing.assert_array_equal(np.diagonal(iou, axis1=1, axis2=2), has_area.astype(float))
    giou = np.asarray(self._iou(b1, b1, "giou"))
    assert (giou >= -1).all() and (giou <= iou + 1e-7).all()

  def test_batched_equals_per_image_and_jit(self):
    rng = np.random.default_rng(2)
    b1, b2 = _boxes(rng, (3, 21)), _boxes(rng, (3, 19))
    batched = self._iou(b1, b2, "giou")
    for i in range(3):
      np.testing.assert_array_equal(batched[i], self._iou(b1[i:i + 1], b2[i:i + 1], "giou")[0])
    jitted = jax.jit(functools.partial(self._iou, kind="giou"))(b1, b2)
    np.testing.assert_array_equal(jitted, batched)

  def test_low_precision_inputs(self):
    rng = np.random.default_rng(3)
    b1, b2 = _boxes(rng, (2, 30)), _boxes(rng, (2, 17))
    for dtype in (jnp.bfloat16, jnp.float16):
      lo1, lo2 = jnp.asarray(b1, dtype), jnp.asarray(b2, dtype)
      up1, up2 = (np.asarray(x.astype(jnp.float32)) for x in (lo1, lo2))
      for kind in ("iou", "giou"):
        got = self._iou(lo1, lo2, kind)
        assert got.dtype == jnp.float32
        np.testing.assert_allclose(got, _oracle(up1, up2, kind), rtol=_RTOL, atol=_ATOL)

  @settings(max_examples=6, deadline=None)
  @given(b=st.integers(1, 2), n=st.integers(0, 40), m=st.integers(0, 40),
         kind=st.sampled_from(["iou", "giou"]), seed=st.integers(0, 2**31))
  def test_hypothesis_shapes(self, b, n, m, kind, seed):
    rng = np.random.default_rng(seed)
    b1, b2 = _boxes(rng, (b, n), "clustered"), _boxes(rng, (b, m))
    got = self._iou(b1, b2, kind)
    assert got.shape == (b, n, m)
    np.testing.assert_allclose(got, _oracle(b1, b2, kind), rtol=_RTOL, atol=_ATOL)

  def test_bad_arguments(self):
    for bad in (0, 3, -8, 2.0, True, None):
      with pytest.raises(ValueError, match="block_n"):
        IoUConfig(block_n=bad)
      with pytest.raises(ValueError, match="block_m"):
        IoUConfig(block_m=bad)
    for bad in (0, 3, 64):
      with pytest.raises(ValueError, match="num_warps"):
        IoUConfig(num_warps=bad)
    boxes = np.zeros((1, 3, 4), np.float32)
    with pytest.raises(ValueError, match="kind"):
      self._iou(boxes, boxes, "diou")
    with pytest.raises(ValueError, match="boxes1"):
      self._iou(boxes[0], boxes)
    with pytest.raises(ValueError, match="boxes2"):
      self._iou(boxes, boxes[..., :3])
    with pytest.raises(ValueError, match="batch"):
      self._iou(boxes, np.zeros((2, 3, 4), np.float32))

    with pytest.raises(ValueError, match="nonfinite"):
      iou_matrix(boxes, boxes, nonfinite="inf", interpret=True)

  @pytest.mark.parametrize("kind", ["iou", "giou"])
  def test_scale_invariant_and_bitwise_at_powers_of_two(self, kind):
    """Issue 13: areas of 1e20-sized boxes overflow float32; each pair is computed at a
    power-of-two scale, so the result is the same at every scale (bit for bit when the
    scale is itself a power of two)."""
    rng = np.random.default_rng(3)
    b1, b2 = _boxes(rng, (1, 19)), _boxes(rng, (1, 23), "clustered")
    want = np.asarray(self._iou(b1, b2, kind))
    for scale in (2.0**-90, 2.0**66, 2.0**120):
      got = np.asarray(self._iou(b1 * np.float32(scale), b2 * np.float32(scale), kind))
      np.testing.assert_array_equal(got, want)
    big = np.array([[[0, 0, 1e20, 1e20], [0, 0, 1, 1]]], np.float32)
    other = np.array([[[0, 0, 2e20, 1e20], [0, 0, 2, 1]]], np.float32)
    got = np.asarray(self._iou(big, other, kind))
    assert np.isfinite(got).all()
    np.testing.assert_allclose(np.diagonal(got[0]), [0.5, 0.5], rtol=1e-6)

  def test_non_finite_boxes(self):
    """A pair with a NaN or infinite coordinate is 0 by default (what soft-NMS relies on) and
    NaN with nonfinite="nan" (what jaxvision.ops.boxes passes); other pairs are exact."""
    b1 = np.array([[[0, 0, 2, 2], [np.nan, 0, 2, 2], [0, 0, np.inf, 2]]], np.float32)
    b2 = np.array([[[1, 0, 3, 2], [0, 0, 2, 2]]], np.float32)
    for kind in ("iou", "giou"):
      zero = np.asarray(self._iou(b1, b2, kind))
      nan = np.asarray(iou_matrix(b1, b2, kind=kind, config=_SMALL, interpret=self.INTERPRET,
                                  nonfinite="nan"))
      np.testing.assert_array_equal(zero[0, 1:], 0.0)
      assert np.isnan(nan[0, 1:]).all()
      np.testing.assert_array_equal(zero[0, 0], nan[0, 0])
      np.testing.assert_allclose(zero[0, 0], _oracle(b1[:, :1], b2, kind)[0, 0], rtol=_RTOL)


class TestIoUKernelInterpret(_IoUKernelChecks):
  INTERPRET = True


@pytest.mark.skipif(jax.default_backend() != "gpu", reason="compiled kernels need a GPU")
class TestIoUKernelCompiled(_IoUKernelChecks):
  INTERPRET = False


@pytest.mark.parametrize("kind,dtype", [("iou", jnp.float32), ("giou", jnp.bfloat16)])
def test_lowers_to_triton_for_gpu(kind, dtype):
  a = jax.ShapeDtypeStruct((2, 100, 4), dtype)
  b = jax.ShapeDtypeStruct((2, 37, 4), dtype)
  assert_lowers_to_triton(functools.partial(iou_matrix, kind=kind), a, b)
