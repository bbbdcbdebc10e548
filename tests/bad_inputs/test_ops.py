"""Bad and extreme input to the box ops, IoU kernel and anchor matching: one table.

Each row is a call and what it must give: an exception (type + message regex naming the
argument) or a documented value (a check on the result). Documented values come from the
contracts in the module docstrings: IoU and its family are scale invariant and never NaN for
finite input; a pair with a NaN or infinite coordinate is NaN for every member; empty or
non-finite ground truth is never matched (issue 13).
"""

from __future__ import annotations


import numpy as np
import pytest

from jaxvision.kernels.iou import IoUConfig, iou_matrix
from jaxvision.ops import boxes as B
from jaxvision.ops.matching import decode_boxes, encode_boxes, match_anchors
from tests.bad_inputs._table import Returns, assert_outcome

_BOX = np.array([[0.0, 0, 2, 2]], np.float32)
_ANCHORS = np.array([[0.0, 0, 10, 10], [10, 0, 20, 10]], np.float32)
_BIG_A = np.array([[0.0, 0, 1e20, 1e20]], np.float32)
_BIG_B = np.array([[0.0, 0, 2e20, 1e20]], np.float32)
_NAN = np.array([[np.nan, 0, 2, 2]], np.float32)
_INF = np.array([[0.0, 0, np.inf, 2]], np.float32)


def _match(gt, valid=(True,), **kw):
  return match_anchors(_ANCHORS, np.asarray(gt, np.float32), np.asarray(valid),
                       iou_threshold=kw.pop("iou_threshold", 0.5), **kw)


ROWS = [
    # --- errors: shapes, dtypes, choices ------------------------------------------------
    ("iou-last-dim-3", lambda: B.box_iou(np.zeros((2, 3)), _BOX),
     (ValueError, r"`boxes1` must have shape \[\.\.\., 4\]")),
    ("iou-1d", lambda: B.box_iou(_BOX, np.zeros(4)),
     (ValueError, r"`boxes2` must have shape \[\.\.\., N, 4\]")),
    ("iou-complex", lambda: B.box_iou(np.zeros((1, 4), np.complex64), _BOX),
     (TypeError, r"`boxes1` must be a real floating-point array")),
    ("iou-leading-dims", lambda: B.box_iou(np.zeros((2, 1, 4)), np.zeros((3, 1, 4))),
     (ValueError, r"leading dimensions of `boxes1`.*`boxes2`.*do not broadcast")),
    ("iou-implementation", lambda: B.box_iou(_BOX, _BOX, implementation="cuda"),
     (ValueError, r"`implementation`")),
    ("convert-format", lambda: B.box_convert(_BOX, in_fmt="xyxz", out_fmt="xywh"),
     (ValueError, r"`in_fmt` must be one of")),
    ("area-last-dim", lambda: B.box_area(np.zeros((2, 5))),
     (ValueError, r"`boxes` must have shape \[\.\.\., 4\]")),
    ("kernel-kind", lambda: iou_matrix(_BOX[None], _BOX[None], kind="diou", interpret=True),
     (ValueError, r"`kind` must be 'iou' or 'giou'")),
    ("kernel-nonfinite", lambda: iou_matrix(_BOX[None], _BOX[None], nonfinite="inf"),
     (ValueError, r"`nonfinite` must be one of")),
    ("kernel-batch", lambda: iou_matrix(_BOX[None], np.zeros((2, 1, 4)), interpret=True),
     (ValueError, r"same batch size")),
    ("kernel-block", lambda: IoUConfig(block_n=3),
     (ValueError, r"`block_n` must be a positive power of two")),
    ("match-threshold-high", lambda: _match(_BOX, iou_threshold=1.5),
     (ValueError, r"`iou_threshold` must be in \[0, 1\]")),
    ("match-threshold-nan", lambda: _match(_BOX, iou_threshold=float("nan")),
     (ValueError, r"`iou_threshold` must be in \[0, 1\]")),
    ("match-anchors-3d", lambda: match_anchors(_ANCHORS[None], _BOX, np.ones(1, bool),
                                               iou_threshold=0.5),
     (ValueError, r"`anchors` must have shape \[A, 4\]")),
    ("match-valid-shape", lambda: _match(_BOX, valid=(True, False)),
     (ValueError, r"`gt_valid` must have shape \(1,\)")),
    ("match-valid-dtype", lambda: match_anchors(_ANCHORS, _BOX, np.ones(1, np.int32),
                                                iou_threshold=0.5),
     (TypeError, r"`gt_valid` must be a bool array")),
    ("match-bipartite", lambda: _match(_BOX, bipartite=1),
     (TypeError, r"`bipartite` must be a bool")),
    ("encode-int", lambda: encode_boxes(np.zeros((2, 4), np.int32), _ANCHORS),
     (TypeError, r"`gt` must be a floating-point array")),
    ("encode-variances", lambda: encode_boxes(_ANCHORS, _ANCHORS, variances=(0.1,)),
     (ValueError, r"`variances` must be None or two positive numbers")),
    ("decode-broadcast", lambda: decode_boxes(np.zeros((3, 4), np.float32), _ANCHORS),
     (ValueError, r"`anchors` \(2, 4\) does not broadcast against `offsets`")),
    # --- documented values: scale, non-finite coordinates, empty boxes ------------------
    ("iou-1e20-is-half", lambda: B.box_iou(_BIG_A, _BIG_B),
     Returns(lambda r: float(r[0, 0]) == 0.5, "0.5 (was 0: areas overflowed)")),
    ("giou-1e20-finite", lambda: B.generalized_box_iou(_BIG_A, _BIG_B),
     Returns(lambda r: abs(float(r[0, 0]) - 0.5) < 1e-6, "0.5, not NaN")),
    ("diou-1e20-finite", lambda: B.distance_box_iou(_BIG_A, _BIG_B),
     Returns(lambda r: abs(float(r[0, 0]) - 0.45) < 1e-6, "0.45, not NaN")),
    ("ciou-1e20-finite", lambda: B.complete_box_iou(_BIG_A, _BIG_B),
     Returns(lambda r: np.isfinite(r).all() and float(r[0, 0]) < 0.45, "finite, < DIoU")),
    ("iou-1e20-pallas", lambda: B.box_iou(_BIG_A, _BIG_B, implementation="pallas"),
     Returns(lambda r: float(r[0, 0]) == 0.5, "0.5, as the XLA path")),
    ("iou-nan-coordinate", lambda: B.box_iou(_NAN, _BOX),
     Returns(lambda r: np.isnan(r).all(), "NaN (was 0)")),
    ("ciou-nan-coordinate", lambda: B.complete_box_iou(_BOX, _NAN),
     Returns(lambda r: np.isnan(r).all(), "NaN, as every member")),
    ("giou-inf-coordinate", lambda: B.generalized_box_iou(_INF, _BOX),
     Returns(lambda r: np.isnan(r).all(), "NaN")),
    ("iou-nan-pallas", lambda: B.box_iou(_NAN, _BOX, implementation="pallas"),
     Returns(lambda r: np.isnan(r).all(), "NaN, as the XLA path")),
    ("iou-empty-box", lambda: B.box_iou(np.array([[3.0, 3, 3, 9]]), _BOX),
     Returns(lambda r: float(r[0, 0]) == 0.0, "0, never NaN")),
    ("iou-no-boxes", lambda: B.box_iou(np.zeros((0, 4)), np.zeros((3, 4))),
     Returns(lambda r: r.shape == (0, 3), "an empty [0, 3] matrix")),
    ("match-zero-width-gt", lambda: _match([[20.0, 0, 20, 10]]),
     Returns(lambda r: (np.asarray(r[0]) == -1).all(), "never matched (was: an anchor at "
             "IoU 0)")),
    ("match-inverted-gt", lambda: _match([[5.0, 5, 2, 8]]),
     Returns(lambda r: (np.asarray(r[0]) == -1).all(), "never matched")),
    ("match-nan-gt", lambda: _match([[np.nan, 0, 5, 5], [0, 0, 10, 10]], valid=(True, True)),
     Returns(lambda r: np.asarray(r[0]).tolist() == [1, -1], "NaN GT never matched")),
    ("encode-zero-size-gt", lambda: encode_boxes(np.zeros((2, 4), np.float32), _ANCHORS),
     Returns(lambda r: np.isfinite(r).all(), "large negative but finite")),
]


@pytest.mark.parametrize("call, expected", [r[1:] for r in ROWS], ids=[r[0] for r in ROWS])
def test_bad_input(call, expected):
  assert_outcome(call, expected)
