"""SSD: a ResNet backbone, a feature pyramid and per-level class / offset heads (book ch. 11).

The source book's detector (Atienza, ch. 11): a ResNet v2 backbone (ResNet56v2) gives 1/4-size
features; the pyramid's first level is a 2x2 average pool of them and every further level a
``Conv3x3 stride 2 -> BN -> ELU`` block on the previous one (4 levels by default). Every level
has a 3x3 conv class head (``anchors_per_point * num_classes`` channels, softmax over the
classes) and a 3x3 conv offset head (``anchors_per_point * 4`` channels). Outputs of all
levels are flattened in the order of :func:`jaxvision.ops.ssd_anchors` (level, then row-major
``(y, x)``, then the point's anchors), so row ``a`` of the outputs belongs to anchor ``a``.

:func:`feature_shapes` gives the pyramid's ``(h, w)`` per level for an image size, which is
what ``ssd_anchors`` needs::

  model = SSDSmall(num_classes=11)
  anchors = ops.ssd_anchors((120, 160), feature_shapes(model, (120, 160)))

The model returns **logits**. The rest of the detector lives here too: :func:`anchor_sizes`
(the per-level size rule), :func:`make_anchors`, :func:`make_targets` (training targets from
padded ground truth) and :func:`postprocess` (softmax, decoding and NMS to padded
detections); :class:`jaxvision.inference.Detector` puts a trained model and these together.
"""

from __future__ import annotations

import functools
from typing import Any, Callable, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from jaxvision import ops
from jaxvision.models.resnet import ResNet56v2, ResNetV2

__all__ = ["SSD", "SSDBook", "SSDSmall", "SSDSmallP2", "SSDTiny", "feature_shapes", "anchor_sizes",
           "make_anchors", "make_targets", "postprocess", "NMS_MODES", "ASPECT_RATIO_UNITS"]

_he_normal = nn.initializers.variance_scaling(2.0, "fan_in", "truncated_normal")


class SSD(nn.Module):
  """Single-shot detector on a ResNet backbone with an ``num_levels``-level pyramid.

  Attributes:
    num_classes: classes including the background (class 0).
    backbone: a module factory returning ``{"features": [B, h, w, c], ...}`` when called as
      ``backbone(dtype=...)(x, train=...)`` (a :mod:`jaxvision.models.resnet` partial).
    num_levels: pyramid levels ``L``.
    anchors_per_point: anchors at every feature-map point (``len(aspect_ratios) + 1`` of
      ``ssd_anchors``; 4 in the book).
    pyramid_width: channels of the stride-2 pyramid convs (None: the backbone's channels).
    head_channel_multiple: the class and offset head convs compute their output channels
      rounded up to a multiple of this and drop the extra ones (1: exact). XLA:CPU's conv
      speed depends on the channel count: a 3x3 conv to 55 channels (5 anchors x 11
      classes) measured 2.6x slower than to 64 on 2 cores, so the cpu models use 16.
    pool_first_level: the book's 2x2 average pool of the backbone's features as the first
      level; False uses the features themselves (one more level of twice the resolution at
      the same count, for small objects: the cpu recipe's digits down to ~8 pixels).
    dtype: computation dtype.
    param_dtype: parameter dtype.
  """

  num_classes: int
  backbone: Callable[..., nn.Module] = ResNet56v2
  num_levels: int = 4
  anchors_per_point: int = 4
  pyramid_width: int | None = None
  pool_first_level: bool = True
  head_channel_multiple: int = 1
  dtype: Any = jnp.float32
  param_dtype: Any = jnp.float32

  def _pyramid(self, x: jax.Array, train: bool) -> list[jax.Array]:
    features = self.backbone(dtype=self.dtype, param_dtype=self.param_dtype)(
        x, train=train)["features"]
    level = features
    if self.pool_first_level:
      level = nn.avg_pool(features, (2, 2), strides=(2, 2), padding="SAME")
    levels = [level]
    width = self.pyramid_width or features.shape[-1]
    for _ in range(self.num_levels - 1):
      level = nn.Conv(width, (3, 3), strides=2, padding="SAME", kernel_init=_he_normal,
                      use_bias=False, dtype=self.dtype, param_dtype=self.param_dtype)(level)
      level = nn.BatchNorm(use_running_average=not train, momentum=0.9, epsilon=1e-5,
                           dtype=self.dtype, param_dtype=self.param_dtype)(level)
      level = nn.elu(level)
      levels.append(level)
    return levels

  @nn.compact
  def __call__(self, x: jax.Array, *, train: bool,
               return_pyramid: bool = False) -> dict[str, Any]:
    """``x``: ``[B, H, W, 3]`` images. Returns ``{"classes": [B, A, C] logits (float32),
    "offsets": [B, A, 4] (float32)}``, plus ``"pyramid"`` (the ``L`` level feature maps)
    with ``return_pyramid``."""
    if self.num_classes < 2:
      raise ValueError(f"`num_classes` must count the background and at least one class, "
                       f"got {self.num_classes}.")
    if self.num_levels < 1:
      raise ValueError(f"`num_levels` must be >= 1, got {self.num_levels}.")
    levels = self._pyramid(x, train)
    k, c = self.anchors_per_point, self.num_classes
    m = int(self.head_channel_multiple)
    if m < 1:
      raise ValueError(f"`head_channel_multiple` must be >= 1, got {self.head_channel_multiple}.")
    padded = lambda n: -(-n // m) * m  # noqa: E731
    classes, offsets = [], []
    for i, level in enumerate(levels):
      b, h, w, _ = level.shape
      cls = nn.Conv(padded(k * c), (3, 3), padding="SAME", kernel_init=_he_normal,
                    dtype=self.dtype, param_dtype=self.param_dtype,
                    name=f"classes_{i}")(level)[..., :k * c]
      off = nn.Conv(padded(k * 4), (3, 3), padding="SAME", kernel_init=_he_normal,
                    dtype=self.dtype, param_dtype=self.param_dtype,
                    name=f"offsets_{i}")(level)[..., :k * 4]
      classes.append(cls.reshape(b, h * w * k, c))
      offsets.append(off.reshape(b, h * w * k, 4))
    out = {"classes": jnp.concatenate(classes, axis=1).astype(jnp.float32),
           "offsets": jnp.concatenate(offsets, axis=1).astype(jnp.float32)}
    if return_pyramid:
      out["pyramid"] = levels
    return out


def feature_shapes(model: SSD, image_shape: Sequence[int]) -> list[tuple[int, int]]:
  """The ``(h, w)`` of each pyramid level of ``model`` for ``(H, W)`` or ``(H, W, C)``
  images (traced abstractly: nothing is computed)."""
  h, w = int(image_shape[0]), int(image_shape[1])
  x = jax.ShapeDtypeStruct((1, h, w, 3), jnp.float32)

  def levels(x):
    variables = model.init(jax.random.key(0), x, train=False)
    return model.apply(variables, x, train=False, return_pyramid=True)["pyramid"]

  return [tuple(int(d) for d in s.shape[1:3]) for s in jax.eval_shape(levels, x)]


# The book's detector: ResNet56v2 (256 channels) with a stride-2 stem, so that 480 x 640 images
# give the book's 30x40, 15x20, 8x10, 4x5 levels (6400 anchors).
SSDBook = functools.partial(SSD, backbone=functools.partial(ResNet56v2, stem_strides=2))
# CPU-sized: a ResNet v2 with a stride-2 stem, two stages (1/4 size, 64 channels, n = 2) and
# width 8 (measured on 2 cores at 120 x 160, batch 32: ~80 images/s for a training step; width
# 16 gave ~20 images/s).
SSDSmall = functools.partial(
    SSD, backbone=functools.partial(ResNetV2, depth=14, width=8, num_stages=2,
                                    stem_strides=2))
# SSDSmall with its pyramid starting at the backbone's 1/4-size features (FPN's P2 stride)
# instead of their 2x2 pool: 30x40, 15x20, 8x10, 4x5 levels at 120 x 160. The cpu recipe's
# model (see experiments/results/ssd_diagnosis.md: at stride 8 the best anchor of a digit
# shorter than 0.16 of the image reaches IoU 0.5 for a third of them).
SSDSmallP2 = functools.partial(SSDSmall, pool_first_level=False, head_channel_multiple=16)
# For tests.
SSDTiny = functools.partial(
    SSD, backbone=functools.partial(ResNetV2, depth=8, width=4, num_stages=2, stem_strides=2),
    num_levels=3, pyramid_width=16)


def anchor_sizes(num_levels: int, scales: Sequence[float] = (0.2, 0.9)
                 ) -> list[tuple[float, float]]:
  """Per-level anchor sizes ``(s_i, sqrt(s_i s_{i+1}))``, ``s = linspace(lo, hi, L + 1)``, as
  fractions of the image side (the book's rule; its ``(lo, hi)`` is ``(0.2, 0.9)``).

  >>> [tuple(round(v, 3) for v in p) for p in anchor_sizes(2, (0.2, 0.8))]
  [(0.2, 0.316), (0.5, 0.632)]
  """
  if isinstance(num_levels, bool) or not isinstance(num_levels, int) or num_levels < 1:
    raise ValueError(f"`num_levels` must be a positive int, got {num_levels!r}.")
  lo, hi = (float(v) for v in scales)
  if not 0 < lo < hi:
    raise ValueError(f"`scales` must be (lo, hi) with 0 < lo < hi, got {tuple(scales)!r}.")
  s = np.linspace(lo, hi, num_levels + 1)
  return [(float(s[i]), float(np.sqrt(s[i] * s[i + 1]))) for i in range(num_levels)]


ASPECT_RATIO_UNITS = ("sides", "pixels")


def make_anchors(model: SSD, image_size: Sequence[int], *,
                 sizes: Sequence[Sequence[float]] | None = None,
                 aspect_ratios: Sequence[float] = (1, 2, 0.5),
                 aspect_ratio_unit: str = "sides") -> jax.Array:
  """``[A, 4]`` xyxy anchors in pixels for ``model`` on ``(H, W)`` images, in the order of
  the model's outputs (:func:`jaxvision.ops.ssd_anchors` on :func:`feature_shapes`).

  ``aspect_ratio_unit``: ``"sides"`` is ``ssd_anchors``' (and the book's) meaning, width /
  height as fractions of the image's sides, so ratio 1 is a 4:3 box on a 4:3 image;
  ``"pixels"`` means width / height in pixels (ratio 1 is square; converted as
  ``r * H / W``; the extra ``s2`` anchor stays ``ssd_anchors``' box of the image's shape).
  The model's ``anchors_per_point`` must be ``len(aspect_ratios) + 1``.
  """
  if aspect_ratio_unit not in ASPECT_RATIO_UNITS:
    raise ValueError(f"`aspect_ratio_unit` must be one of {ASPECT_RATIO_UNITS}, got "
                     f"{aspect_ratio_unit!r}.")
  if len(aspect_ratios) + 1 != model.anchors_per_point:
    raise ValueError(f"`aspect_ratios` gives {len(aspect_ratios) + 1} anchors per point but "
                     f"the model has anchors_per_point={model.anchors_per_point}.")
  ratios = tuple(float(r) for r in aspect_ratios)
  if aspect_ratio_unit == "pixels":
    ratios = tuple(r * float(image_size[0]) / float(image_size[1]) for r in ratios)
  return ops.ssd_anchors(tuple(image_size), feature_shapes(model, image_size), sizes=sizes,
                         aspect_ratios=ratios)


def make_targets(anchors: jax.Array, boxes: jax.Array, classes: jax.Array,
                 num_boxes: jax.Array, *, match_iou: float,
                 variances: Sequence[float] | None, ignore_iou: float | None = None
                 ) -> tuple[jax.Array, jax.Array]:
  """Training targets from padded ground truth.

  Args:
    anchors: ``[A, 4]`` xyxy anchors.
    boxes: ``[B, G, 4]`` xyxy ground-truth boxes, rows past ``num_boxes`` padding.
    classes: ``[B, G]`` their classes (``1..C-1``).
    num_boxes: ``[B]`` real boxes per image.
    match_iou: IoU above which an anchor matches a box beyond the bipartite pass
      (:func:`jaxvision.ops.match_anchors`; the book's 0.6).
    variances: offset normalisation of :func:`jaxvision.ops.encode_boxes`, or None for raw
      pixel offsets.
    ignore_iou: an ignore band (RetinaNet's): an unmatched anchor whose best IoU is ``>=
      ignore_iou`` (and so ``< match_iou``) gets label -1, which
      :func:`jaxvision.ops.ssd_loss` leaves out (neither a positive nor a negative, never a
      mined hard negative). None: no band.

  Returns:
    ``(labels [B, A] int32, 0 = background, -1 ignored; offsets [B, A, 4])``; unmatched
    anchors get the zero offset of the anchor to itself.
  """
  if ignore_iou is not None and not 0.0 < float(ignore_iou) <= float(match_iou):
    raise ValueError(f"`ignore_iou` must be in (0, match_iou={match_iou}], got {ignore_iou!r} "
                     f"(0 would leave no negatives).")
  valid = jnp.arange(boxes.shape[1]) < jnp.asarray(num_boxes)[:, None]
  matched, iou = ops.match_anchors(anchors, boxes, valid, iou_threshold=match_iou)
  safe = jnp.maximum(matched, 0)
  labels = jnp.where(matched >= 0, jnp.take_along_axis(classes, safe, axis=1), 0)
  if ignore_iou is not None:
    labels = jnp.where((matched < 0) & (iou >= float(ignore_iou)), -1, labels)
  gt = jnp.take_along_axis(boxes, safe[..., None], axis=1)
  gt = jnp.where((matched >= 0)[..., None], gt, anchors)
  return labels.astype(jnp.int32), ops.encode_boxes(gt, anchors, variances=variances)


NMS_MODES = ("class_agnostic", "per_class")


def postprocess(class_logits: jax.Array, offsets: jax.Array, anchors: jax.Array, *,
                variances: Sequence[float] | None, score_threshold: float, nms_iou: float,
                max_detections: int, nms: str = "class_agnostic", soft_nms: bool = False
                ) -> tuple[jax.Array, jax.Array, jax.Array, jax.Array]:
  """Padded detections from the raw outputs of :class:`SSD`.

  Softmax over the classes, offsets decoded against ``anchors``, then NMS:
  ``"class_agnostic"`` is the book's (:func:`jaxvision.ops.detection_nms`: every anchor's
  best non-background class, one suppression over all classes, IoU ``>= nms_iou``, stops
  below ``score_threshold``; ``soft_nms`` for its Gaussian soft-NMS); ``"per_class"`` is
  :func:`jaxvision.ops.multiclass_nms` (TF's combined NMS, per-class suppression).

  Returns:
    ``(boxes [B, K, 4], scores [B, K], classes [B, K] int32, num_valid [B])`` with ``K =
    max_detections``, in selection order; padding rows have class -1, score 0.
  """
  if nms not in NMS_MODES:
    raise ValueError(f"`nms` must be one of {NMS_MODES}, got {nms!r}.")
  probs = jax.nn.softmax(class_logits.astype(jnp.float32), axis=-1)
  boxes = ops.decode_boxes(offsets, anchors, variances=variances)
  if nms == "per_class":
    det_boxes, det_scores, det_classes, count = ops.multiclass_nms(
        boxes, probs[..., 1:], iou_threshold=nms_iou, score_threshold=score_threshold,
        max_output_size_per_class=max_detections, max_total_size=max_detections)
    return det_boxes, det_scores, jnp.where(det_classes >= 0, det_classes + 1, -1), count
  idx, scores, classes, count = ops.detection_nms(
      probs, boxes, class_threshold=score_threshold, iou_threshold=nms_iou, soft=soft_nms,
      max_output_size=max_detections)
  det_boxes = jnp.take_along_axis(boxes, jnp.maximum(idx, 0)[..., None], axis=-2)
  det_boxes = jnp.where((idx >= 0)[..., None], det_boxes, 0.0)
  return det_boxes, scores, classes, count
