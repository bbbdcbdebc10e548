"""``implementation=`` on the ops: the Pallas kernels (interpreted on CPU) agree with the XLA path."""

import jax
import numpy as np
import pytest

from jaxvision import ops
from jaxvision.ops import _dispatch


def _boxes(rng, shape, *, ties=False, degenerate=False):
  xy = rng.uniform(-20.0, 60.0, shape + (2,))
  wh = rng.uniform(1.0, 30.0, shape + (2,))
  if degenerate:  # zero-area and inverted boxes mixed in
    wh[..., ::5, 0] = 0.0
    wh[..., 1::7, :] *= -1.0
  boxes = np.concatenate([xy, xy + wh], axis=-1).astype(np.float32)
  if ties and shape[-1] > 3:
    boxes[..., 1, :] = boxes[..., 0, :]
  return boxes


def _scores(rng, shape, *, ties=False):
  scores = rng.random(shape).astype(np.float32)
  if ties:
    scores = np.round(scores * 4) / 4  # many exact ties
  return scores


def _same(xla_out, pallas_out):
  for a, b in zip(xla_out, pallas_out):
    a, b = np.asarray(a), np.asarray(b)
    assert a.shape == b.shape and a.dtype == b.dtype
    if a.dtype.kind in "iu":
      np.testing.assert_array_equal(a, b)
    else:
      np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-6)


CASES = [dict(), dict(ties=True), dict(degenerate=True)]
# (N, case): empty, one box, a partial tile (plain, with ties, with degenerate boxes), and
# N = 70, not a multiple of the kernels' 64-box tiles (interpret mode is slow: few large cases).
# Each N compiles every program of both paths once: the three partial-tile cases share one N.
SIZES_CASES = [(0, 0), (1, 0), (37, 0), (37, 1), (37, 2), (70, 0)]


@pytest.mark.parametrize("n, case", SIZES_CASES)
def test_nms_family_paths_agree(n, case):
  rng = np.random.default_rng(100 * n + case)
  kw = CASES[case]
  boxes = _boxes(rng, (2, n), degenerate=kw.get("degenerate", False), ties=kw.get("ties", False))
  scores = _scores(rng, (2, n), ties=kw.get("ties", False))
  classes = rng.integers(0, 3, (2, n))
  class_scores = _scores(rng, (2, n, 3), ties=kw.get("ties", False))
  calls = {
      "nms": lambda impl: ops.nms(boxes, scores, iou_threshold=0.45, max_output_size=40,
                                  implementation=impl),
      "nms_score_threshold": lambda impl: ops.nms(
          boxes, scores, iou_threshold=0.3, max_output_size=7, score_threshold=0.5,
          implementation=impl),
      "batched_nms": lambda impl: ops.batched_nms(
          boxes, scores, classes, iou_threshold=0.45, max_output_size=40, implementation=impl),
      "soft_gaussian": lambda impl: ops.soft_nms(boxes, scores, max_output_size=40,
                                                 implementation=impl),
      "soft_linear": lambda impl: ops.soft_nms(boxes, scores, method="linear",
                                               max_output_size=40, implementation=impl),
      "multiclass": lambda impl: ops.multiclass_nms(
          boxes, class_scores, iou_threshold=0.45, score_threshold=0.2,
          max_output_size_per_class=10, max_total_size=25, implementation=impl),
  }
  for name, call in calls.items():
    try:
      _same(call("xla"), call("pallas"))
    except AssertionError as e:
      raise AssertionError(f"{name}: {e}") from None


def test_unbatched_and_jit():
  rng = np.random.default_rng(7)
  boxes, scores = _boxes(rng, (70,)), _scores(rng, (70,))
  f = jax.jit(lambda b, s: ops.nms(b, s, iou_threshold=0.5, max_output_size=30,
                                   implementation="pallas"))
  _same(ops.nms(boxes, scores, iou_threshold=0.5, max_output_size=30, implementation="xla"),
        f(boxes, scores))


def test_batched_nms_kernel_is_class_aware_with_negative_coordinates():
  # Two identical boxes far in the negative quadrant, different classes: both kept.
  boxes = np.array([[-1e6, -1e6, -1e6 + 10, -1e6 + 10]] * 2, np.float32)
  idx, n = ops.batched_nms(boxes, np.array([0.9, 0.8], np.float32), np.array([0, 1]),
                           iou_threshold=0.5, max_output_size=2, implementation="pallas")
  assert idx.tolist() == [0, 1] and int(n) == 2


@pytest.mark.parametrize("fn", [ops.box_iou, ops.generalized_box_iou])
@pytest.mark.parametrize("shapes", [((5,), (7,)), ((2, 65), (2, 3)), ((3, 1, 9), (4, 2))])
def test_pairwise_paths_agree(fn, shapes):
  rng = np.random.default_rng(len(shapes[0]) + 10 * shapes[0][-1])
  a = _boxes(rng, shapes[0], degenerate=True)
  b = _boxes(rng, shapes[1])
  if len(shapes[1]) == 2 and len(shapes[0]) == 3:  # broadcasting leading dims
    a = a[:, :1]
  want, got = fn(a, b, implementation="xla"), fn(a, b, implementation="pallas")
  assert want.shape == got.shape and want.dtype == got.dtype
  np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6)


def test_default_is_xla_off_gpu_and_pallas_only_when_validated(monkeypatch):
  assert _dispatch.resolve(None, "nms") == ("xla", False)
  assert _dispatch.resolve("pallas", "nms") == ("pallas", jax.default_backend() != "gpu")
  monkeypatch.setattr(jax, "default_backend", lambda: "gpu")
  assert _dispatch.resolve(None, "nms") == ("xla", False)  # not validated on a GPU yet
  import jaxvision.kernels as kernels  # pylint: disable=import-outside-toplevel
  monkeypatch.setattr(kernels, "GPU_VALIDATED", frozenset({"nms"}))
  assert _dispatch.resolve(None, "nms") == ("pallas", False)
  assert _dispatch.resolve(None, "iou") == ("xla", False)


@pytest.mark.parametrize("bad", ["cuda", "XLA", 1])
def test_bad_implementation(bad):
  boxes = np.zeros((2, 4), np.float32)
  with pytest.raises(ValueError, match="implementation"):
    ops.nms(boxes, np.ones(2, np.float32), iou_threshold=0.5, max_output_size=2,
            implementation=bad)
  with pytest.raises(ValueError, match="implementation"):
    ops.box_iou(boxes, boxes, implementation=bad)
