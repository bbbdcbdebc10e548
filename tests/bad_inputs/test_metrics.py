"""Bad input to the clustering, detection and segmentation metrics: one table.

Each row is a call and what it must give: an exception (type + message regex naming the
argument) or a documented value. Cluster ids are arbitrary names (issue 13): huge ids are
relabelled, not used as indices.
"""

from __future__ import annotations


import numpy as np
import pytest

from jaxvision.metrics import clustering as C
from jaxvision.metrics import detection as D
from jaxvision.metrics import segmentation as S
from tests.bad_inputs._table import Returns, assert_outcome

_BOX = np.array([[0.0, 0, 2, 2]], np.float32)
_IMAGE = {"boxes": _BOX, "classes": np.array([1]), "scores": np.array([0.9])}
_GT = {"boxes": _BOX, "classes": np.array([1])}
_MASK = np.array([[0, 1], [1, 2]], np.int32)


ROWS = [
    # --- clustering -----------------------------------------------------------------------
    ("labels-2d", lambda: C.hungarian_accuracy([[0, 1]], [[0, 1]]),
     (ValueError, r"`labels` must have shape \[N\]")),
    ("predictions-float", lambda: C.hungarian_accuracy([0, 1], [0.0, 1.0]),
     (TypeError, r"`predictions` must hold integers")),
    ("labels-negative", lambda: C.adjusted_rand_index([0, -1], [0, 1]),
     (ValueError, r"`labels` must be non-negative")),
    ("length-mismatch", lambda: C.normalized_mutual_info([0, 1, 1], [0, 1]),
     (ValueError, r"`labels` and `predictions` must have the same length")),
    ("empty", lambda: C.many_to_one_accuracy([], []),
     (ValueError, r"must not be empty")),
    ("num-classes-small", lambda: C.hungarian_accuracy([0, 3], [0, 1], num_classes=2),
     (ValueError, r"`num_classes` must be at least 4")),
    ("num-clusters-float", lambda: C.contingency_matrix([0, 1], [0, 1], num_clusters=2.0),
     (TypeError, r"`num_clusters` must be a Python int")),
    ("contingency-huge-ids", lambda: C.contingency_matrix([0, 1], [0, 10**9]),
     (ValueError, r"contingency matrix .*`predictions` holds ids too large.*relabel")),
    ("mapping-huge-ids", lambda: C.hungarian_accuracy([0, 1], [0, 10**9], return_mapping=True),
     (ValueError, r"mapping .*`predictions`")),
    ("heads-shape", lambda: C.evaluate_heads([0, 1], [0, 1], [0.0]),
     (ValueError, r"`head_predictions` must have shape \[H, N\]")),
    ("heads-losses", lambda: C.evaluate_heads([0, 1], [[0, 1]], [0.0, 1.0]),
     (ValueError, r"`head_losses` must have shape \[H\] = \[1\]")),
    ("hungarian-huge-ids", lambda: C.hungarian_accuracy([0, 1], [0, 10**9]),
     Returns(lambda r: r == 1.0, "1.0 from a 2x2 matrix (was a dense 15 GiB one)")),
    ("many-to-one-huge-ids", lambda: C.many_to_one_accuracy([0, 1, 1], [2**40, 7, 7]),
     Returns(lambda r: r == 1.0, "1.0")),
    ("ari-huge-ids", lambda: C.adjusted_rand_index([0, 0, 1], [10**12, 10**12, 5]),
     Returns(lambda r: r == 1.0, "1.0")),
    ("nmi-huge-ids", lambda: C.normalized_mutual_info([0, 0, 1], [10**12, 10**12, 5]),
     Returns(lambda r: abs(r - 1.0) < 1e-12, "1.0")),
    # --- detection ------------------------------------------------------------------------
    ("det-box-shape", lambda: D.image_detection_metrics(np.zeros((1, 3)), [1], _BOX, [1]),
     (ValueError, r"`pred_boxes` must have shape \[n, 4\]")),
    ("det-box-nan", lambda: D.image_detection_metrics(_BOX, [1], _BOX * np.nan, [1]),
     (ValueError, r"`gt_boxes` must be finite")),
    ("det-classes-float", lambda: D.image_detection_metrics(_BOX, [1.5], _BOX, [1]),
     (TypeError, r"`pred_classes` must hold integers")),
    ("voc-threshold-zero", lambda: D.average_precision_voc([_IMAGE], [_GT], iou_threshold=0.0),
     (ValueError, r"`iou_threshold` must be in \(0, 1\]")),
    ("summary-no-images", lambda: D.detection_summary([], []),
     (ValueError, r"at least one image")),
    ("det-image-count", lambda: D.coco_map([_IMAGE, _IMAGE], [_GT]),
     (ValueError, r"one entry per image")),
    ("det-missing-scores", lambda: D.coco_map([_GT], [_GT]),
     (ValueError, r"`predictions\[0\]` is missing the keys \['scores'\]")),
    ("det-not-a-list", lambda: D.coco_map(_IMAGE, [_GT]),
     (TypeError, r"`predictions` must be a list of dicts")),
    # --- segmentation ---------------------------------------------------------------------
    ("seg-shape", lambda: S.confusion_matrix(_MASK, _MASK[:1], num_classes=3),
     (ValueError, r"`labels` and `predictions` must have the same shape")),
    ("seg-float-mask", lambda: S.confusion_matrix(_MASK * 1.0, _MASK, num_classes=3),
     (TypeError, r"`labels` must be an integer class mask")),
    ("seg-out-of-range", lambda: S.confusion_matrix(_MASK, _MASK, num_classes=2),
     (ValueError, r"`labels` must hold classes in \[0, num_classes=2\)")),
    ("seg-ignore-index", lambda: S.confusion_matrix(_MASK, _MASK, num_classes=3,
                                                    ignore_index=1.5),
     (TypeError, r"`ignore_index` must be a Python int or None")),
    ("cm-not-square", lambda: S.segmentation_metrics_from_confusion(np.zeros((2, 3))),
     (ValueError, r"`cm` must be a square \[C, C\] matrix")),
    ("cm-negative", lambda: S.segmentation_metrics_from_confusion(-np.eye(2)),
     (ValueError, r"`cm` must hold finite, non-negative counts")),
    ("cm-empty", lambda: S.segmentation_metrics_from_confusion(np.zeros((2, 2))),
     (ValueError, r"`cm` must count at least one pixel")),
    ("miou-empty", lambda: S.image_miou(np.zeros((0, 0), int), np.zeros((0, 0), int),
                                        num_classes=2),
     (ValueError, r"`label` must not be empty")),
    ("seg-summary-count", lambda: S.segmentation_summary([_MASK, _MASK], [_MASK],
                                                         num_classes=3),
     (ValueError, r"must hold as many images")),
]


@pytest.mark.parametrize("call, expected", [r[1:] for r in ROWS], ids=[r[0] for r in ROWS])
def test_bad_input(call, expected):
  assert_outcome(call, expected)
