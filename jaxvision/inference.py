"""Trained detectors and segmenters as objects: load, run on any images, evaluate, save.

    from jaxvision.inference import Detector, Segmenter

    detector = Detector.load("experiments/results/ssd_cpu_weights.msgpack")
    boxes, scores, classes, num_valid = detector(image)     # uint8 [H, W, 3], any H x W
    detector.class_names[int(classes[0])]

    segmenter = Segmenter.load("experiments/results/fcn_cpu_weights.msgpack")
    mask = segmenter(image)                                 # int32 [H, W] class ids

A weights file (:mod:`jaxvision.weights`) holds the variables and a spec: which model of
:mod:`jaxvision.models`, its input size, class names and, for a detector, anchors, offset
variances and post-processing. Images are ``uint8`` in ``[0, 255]`` or floating in ``[0,
1]``, ``[H, W, 3]`` or ``[B, H, W, 3]``, or a list of images of different sizes; each is
resized (bilinear) to the model's input and the outputs are mapped back to its own pixels.
Every call is one jitted computation per input shape.
"""

from __future__ import annotations

import dataclasses
import os
import time
from typing import Any, Iterable, Iterator, Mapping, NamedTuple, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from jaxvision import metrics, models, ops, weights
from jaxvision.models import ssd as ssd_lib

__all__ = ["Detections", "DetectorSpec", "Detector", "SegmenterSpec", "Segmenter",
           "build_model", "spec_model", "batches", "evaluate_detector", "evaluate_segmenter",
           "diagnose_detector", "diagnose_segmenter", "ground_truth_lists", "detector_card"]


def build_model(name: str, num_classes: int, **attributes):
  """The flax module ``jaxvision.models.<name>(num_classes=num_classes, **attributes)``."""
  factory = getattr(models, str(name), None) if str(name) in models.__all__ else None
  if factory is None:
    raise ValueError(f"unknown model {name!r}: not a name in jaxvision.models.")
  return factory(num_classes=int(num_classes), **attributes)


def spec_model(spec):
  """The flax module a :class:`DetectorSpec` or :class:`SegmenterSpec` describes (a
  detector with ``len(spec.aspect_ratios) + 1`` anchors per point)."""
  if isinstance(spec, DetectorSpec):
    if _model_can(spec.model, "detect"):  # its anchors (if any) are the model's own attributes
      return build_model(spec.model, spec.num_classes)
    return build_model(spec.model, spec.num_classes,
                       anchors_per_point=len(spec.aspect_ratios) + 1)
  return build_model(spec.model, spec.num_classes)


def _model_can(name: str, method: str) -> bool:
  """Whether the class behind ``jaxvision.models.<name>`` (a module or a partial of one) has
  ``method``: ``"detect"`` for detectors that detect themselves (Faster R-CNN, YOLO: padded
  detections from ``detect(x, *, score_threshold, nms_iou, max_detections)`` rather than SSD
  anchors + :func:`jaxvision.models.ssd.postprocess`), ``"detect_masks"`` for Mask R-CNN."""
  factory = getattr(models, str(name), None)
  return callable(getattr(getattr(factory, "func", factory), method, None))


def _pair(value, name) -> tuple[int, int]:
  try:
    h, w = (int(v) for v in value)
  except (TypeError, ValueError):
    raise ValueError(f"`{name}` must be (height, width), got {value!r}.") from None
  if h < 1 or w < 1:
    raise ValueError(f"`{name}` must be positive, got {value!r}.")
  return h, w


def _class_names(names, num_classes: int) -> tuple[str, ...]:
  if names is None:
    return ("background",) + tuple(str(i) for i in range(1, num_classes))
  names = tuple(str(n) for n in names)
  if len(names) != num_classes:
    raise ValueError(f"`class_names` has {len(names)} names for {num_classes} classes.")
  return names


@dataclasses.dataclass(frozen=True)
class DetectorSpec:
  """What rebuilds a single-shot detector from its weights.

  Attributes:
    model: a detector name in :mod:`jaxvision.models` (``"SSDSmall"``, ...).
    num_classes: classes including the background (0).
    image_size: the model's input ``(height, width)``.
    class_names: one per class, index 0 the background.
    anchor_sizes: per pyramid level ``(s1, s2)`` as fractions of the image side (None:
      :func:`jaxvision.ops.ssd_anchors`' default).
    aspect_ratios: of the ``s1`` anchors.
    aspect_ratio_unit: ``"sides"`` (the book's: width / height as fractions of the image's
      sides) or ``"pixels"`` (see :func:`jaxvision.models.ssd.make_anchors`).
    variances: offset normalisation (None: raw pixel offsets).
    nms: ``"class_agnostic"`` (the book's) or ``"per_class"``
      (see :func:`jaxvision.models.ssd.postprocess`).
    soft_nms: Gaussian soft-NMS in the class-agnostic mode.
    score_threshold: detections need at least this class probability.
    nms_iou: suppression IoU.
    max_detections: output slots per image.
    training: free-form record of how the weights were trained (JSON).
  """

  model: str
  num_classes: int
  image_size: tuple[int, int]
  class_names: tuple[str, ...] | None = None
  anchor_sizes: tuple[tuple[float, float], ...] | None = None
  aspect_ratios: tuple[float, ...] = (1.0, 2.0, 0.5)
  aspect_ratio_unit: str = "sides"
  variances: tuple[float, float] | None = (0.1, 0.2)
  nms: str = "class_agnostic"
  soft_nms: bool = False
  score_threshold: float = 0.5
  nms_iou: float = 0.2
  max_detections: int = 32
  training: Mapping[str, Any] = dataclasses.field(default_factory=dict)

  def __post_init__(self):
    set_ = lambda k, v: object.__setattr__(self, k, v)  # noqa: E731
    set_("image_size", _pair(self.image_size, "image_size"))
    set_("num_classes", int(self.num_classes))
    set_("class_names", _class_names(self.class_names, self.num_classes))
    if self.anchor_sizes is not None:
      set_("anchor_sizes", tuple(tuple(float(v) for v in p) for p in self.anchor_sizes))
    set_("aspect_ratios", tuple(float(v) for v in self.aspect_ratios))
    if self.variances is not None:
      set_("variances", tuple(float(v) for v in self.variances))
    if self.aspect_ratio_unit not in ssd_lib.ASPECT_RATIO_UNITS:
      raise ValueError(f"`aspect_ratio_unit` must be one of {ssd_lib.ASPECT_RATIO_UNITS}, "
                       f"got {self.aspect_ratio_unit!r}.")
    if self.nms not in ssd_lib.NMS_MODES:
      raise ValueError(f"`nms` must be one of {ssd_lib.NMS_MODES}, got {self.nms!r}.")
    for name in ("score_threshold", "nms_iou"):
      v = float(getattr(self, name))
      if not 0.0 <= v <= 1.0:
        raise ValueError(f"`{name}` must be in [0, 1], got {v}.")
      set_(name, v)
    if int(self.max_detections) < 1:
      raise ValueError(f"`max_detections` must be >= 1, got {self.max_detections}.")
    set_("max_detections", int(self.max_detections))
    set_("training", dict(self.training))

  def to_dict(self) -> dict[str, Any]:
    return {"kind": "detector", **dataclasses.asdict(self)}

  @classmethod
  def from_dict(cls, d: Mapping[str, Any]) -> "DetectorSpec":
    names = {f.name for f in dataclasses.fields(cls)}
    return cls(**{k: v for k, v in d.items() if k in names})


@dataclasses.dataclass(frozen=True)
class SegmenterSpec:
  """What rebuilds a segmentation network from its weights (see :class:`DetectorSpec`)."""

  model: str
  num_classes: int
  image_size: tuple[int, int]
  class_names: tuple[str, ...] | None = None
  training: Mapping[str, Any] = dataclasses.field(default_factory=dict)

  def __post_init__(self):
    object.__setattr__(self, "image_size", _pair(self.image_size, "image_size"))
    object.__setattr__(self, "num_classes", int(self.num_classes))
    object.__setattr__(self, "class_names", _class_names(self.class_names, self.num_classes))
    object.__setattr__(self, "training", dict(self.training))

  def to_dict(self) -> dict[str, Any]:
    return {"kind": "segmenter", **dataclasses.asdict(self)}

  from_dict = classmethod(DetectorSpec.from_dict.__func__)


class Detections(NamedTuple):
  """Padded detections: ``boxes [..., K, 4]`` xyxy in the input image's pixels,
  ``scores [..., K]``, ``classes [..., K]`` int32 (-1 on padding rows), ``num_valid [...]``."""

  boxes: jax.Array
  scores: jax.Array
  classes: jax.Array
  num_valid: jax.Array


def _to_float(images: jax.Array) -> jax.Array:
  if images.dtype == jnp.uint8:
    return images.astype(jnp.float32) / 255.0
  return images.astype(jnp.float32)


def _resize(images: jax.Array, size: tuple[int, int]) -> jax.Array:
  if tuple(images.shape[1:3]) == tuple(size):
    return images
  return jax.image.resize(images, (images.shape[0], *size, images.shape[-1]), "linear",
                          antialias=True)


def _check_images(images: Any, name: str = "images") -> tuple[list[np.ndarray] | jax.Array, bool]:
  """``(batch or list of [H, W, 3] images, single)``."""
  if isinstance(images, (list, tuple)):
    if not images:
      raise ValueError(f"`{name}` is an empty list.")
    items = [_check_images(im, name)[0] for im in images]
    if any(i.shape[0] != 1 for i in items):
      raise ValueError(f"`{name}`: a list must hold single [H, W, 3] images.")
    shapes = {tuple(i.shape) for i in items}
    if len(shapes) == 1:
      return jnp.concatenate(items), False
    return [i for i in items], False
  arr = images if isinstance(images, jax.Array) else np.asarray(images)
  if arr.dtype == object or not (arr.dtype == np.uint8 or jnp.issubdtype(arr.dtype,
                                                                         jnp.floating)):
    raise TypeError(f"`{name}` must be uint8 or floating images, got dtype {arr.dtype}.")
  if arr.ndim == 3:
    arr, single = arr[None], True
  elif arr.ndim == 4:
    single = False
  else:
    raise ValueError(f"`{name}` must be [H, W, 3] or [B, H, W, 3], got shape {arr.shape}.")
  if arr.shape[-1] != 3 or arr.shape[1] < 1 or arr.shape[2] < 1:
    raise ValueError(f"`{name}` must be [H, W, 3] or [B, H, W, 3] RGB images, got shape "
                     f"{arr.shape}.")
  return jnp.asarray(arr), single


class _Predictor:
  """What :class:`Detector` and :class:`Segmenter` share: weights, model, jitted calls."""

  _SPEC: type = DetectorSpec
  _KIND = ""

  def __init__(self, spec, variables: Mapping[str, Any], *, source: str = "`variables`"):
    """``source`` names where ``variables`` came from in a mismatch message."""
    if not isinstance(spec, self._SPEC):
      raise TypeError(f"`spec` must be a {self._SPEC.__name__}, got {type(spec).__name__}.")
    self.spec = spec
    self.model = spec_model(spec)
    expected = jax.eval_shape(self._init, jax.random.key(0))
    variables = {k: v for k, v in dict(variables).items() if k in expected}
    self.variables = jax.tree.map(jnp.asarray, weights.check_variables(
        variables, expected, source=source, model=spec.model))
    self._jitted: dict[Any, Any] = {}

  def _init(self, rng):
    x = jnp.zeros((1, *self.spec.image_size, 3), jnp.float32)
    return dict(self.model.init(rng, x, train=False))

  @property
  def class_names(self) -> tuple[str, ...]:
    return self.spec.class_names

  @property
  def image_size(self) -> tuple[int, int]:
    return self.spec.image_size

  def save(self, path: str | os.PathLike):
    """Writes the weights and the spec to one file (:func:`jaxvision.weights.save_weights`)."""
    return weights.save_weights(path, self.variables, self.spec.to_dict())

  @classmethod
  def load(cls, path: str | os.PathLike):
    """Rebuilds the model from a weights file (or a workdir holding ``weights.msgpack``).

    Raises:
      FileNotFoundError: no such file.
      ValueError: not a weights file, a file of another kind of model (the message names
        the model it holds), or variables that do not fit the model.
    """
    variables, spec = weights.load_weights(path)
    kind = spec.get("kind")
    if kind != cls._KIND:
      raise ValueError(f"{str(path)!r} holds a {kind or 'model'} ({spec.get('model')}), not "
                       f"a {cls._KIND}; load it with "
                       f"{'Segmenter' if kind == 'segmenter' else 'Detector'}.load.")
    return cls(cls._SPEC.from_dict(spec), variables, source=repr(str(path)))

  def __repr__(self) -> str:
    return (f"{type(self).__name__}({self.spec.model}, {self.spec.num_classes} classes, "
            f"input {self.spec.image_size[0]}x{self.spec.image_size[1]})")


class Detector(_Predictor):
  """A trained detector: an SSD-style one with its anchors and post-processing, or a
  model with its own ``detect`` method (:class:`jaxvision.models.FasterRCNN`,
  :class:`jaxvision.models.YOLO`; :attr:`end_to_end`).

  ``detector(images)`` returns :class:`Detections`; ``score_threshold=`` overrides the
  spec's (e.g. 0.05 for a complete precision-recall curve).
  """

  _SPEC = DetectorSpec
  _KIND = "detector"

  @property
  def end_to_end(self) -> bool:
    """Whether the model detects itself (Faster R-CNN, YOLO): then it has no SSD
    :attr:`anchors` and no :meth:`dense_outputs`; :meth:`__call__` and :meth:`detect` work
    the same for every detector."""
    return _model_can(self.spec.model, "detect")

  @property
  def anchors(self) -> jax.Array:
    if self.end_to_end:
      raise ValueError(f"{self.spec.model} detects itself (Faster R-CNN / YOLO): it has no "
                       f"SSD anchors (Faster R-CNN's RPN anchors: "
                       f"jaxvision.models.faster_rcnn.rpn_anchors).")
    if "anchors" not in self.__dict__:
      self.__dict__["anchors"] = ssd_lib.make_anchors(
          self.model, self.spec.image_size, sizes=self.spec.anchor_sizes,
          aspect_ratios=self.spec.aspect_ratios,
          aspect_ratio_unit=self.spec.aspect_ratio_unit)
    return self.__dict__["anchors"]

  def _fn(self, score_threshold: float):
    key = float(score_threshold)
    if key not in self._jitted:
      spec, model = self.spec, self.model
      anchors = None if self.end_to_end else self.anchors

      def run(variables, images):
        in_h, in_w = images.shape[1:3]
        x = _resize(_to_float(images), spec.image_size)
        if anchors is None:
          boxes, scores, classes, count = model.apply(
              variables, x, method="detect", score_threshold=key, nms_iou=spec.nms_iou,
              max_detections=spec.max_detections)
        else:
          out = model.apply(variables, x, train=False)
          boxes, scores, classes, count = ssd_lib.postprocess(
              out["classes"], out["offsets"], anchors, variances=spec.variances,
              score_threshold=key, nms_iou=spec.nms_iou, max_detections=spec.max_detections,
              nms=spec.nms, soft_nms=spec.soft_nms)
        scale = jnp.array([in_w / spec.image_size[1], in_h / spec.image_size[0]] * 2,
                          jnp.float32)
        return Detections(boxes * scale, scores, classes.astype(jnp.int32),
                          count.astype(jnp.int32))

      self._jitted[key] = jax.jit(run)
    return self._jitted[key]

  def __call__(self, images: Any, *, score_threshold: float | None = None) -> Detections:
    """Detections for ``[H, W, 3]``, ``[B, H, W, 3]`` or a list of images (any sizes)."""
    threshold = self.spec.score_threshold if score_threshold is None else float(
        score_threshold)
    if not 0.0 <= threshold <= 1.0:
      raise ValueError(f"`score_threshold` must be in [0, 1], got {score_threshold!r}.")
    batch, single = _check_images(images)
    fn = self._fn(threshold)
    if isinstance(batch, list):
      parts = [fn(self.variables, im) for im in batch]
      return Detections(*(jnp.concatenate(p) for p in zip(*parts)))
    out = fn(self.variables, batch)
    return Detections(*(a[0] for a in out)) if single else out

  def dense_outputs(self, images: Any) -> tuple[jax.Array, jax.Array]:
    """The network's outputs before suppression for a ``[B, H, W, 3]`` batch (any size):
    ``(probs [B, A, C]`` softmax class probabilities, background at 0, ``boxes [B, A, 4]``
    every anchor's decoded box in input pixels``)``, rows in the order of :attr:`anchors`."""
    if self.end_to_end:
      raise ValueError(f"dense_outputs is SSD's (per-anchor outputs); {self.spec.model} "
                       f"detects itself: use model.apply(variables, x, train=False).")
    batch, single = _check_images(images)
    if isinstance(batch, list):
      raise ValueError("`images` for dense_outputs must be one array (same-size images).")
    if "dense" not in self._jitted:
      spec, model, anchors = self.spec, self.model, self.anchors

      def run(variables, images):
        in_h, in_w = images.shape[1:3]
        out = model.apply(variables, _resize(_to_float(images), spec.image_size), train=False)
        boxes = ops.decode_boxes(out["offsets"], anchors, variances=spec.variances)
        scale = jnp.array([in_w / spec.image_size[1], in_h / spec.image_size[0]] * 2,
                          jnp.float32)
        return jax.nn.softmax(out["classes"], axis=-1), boxes * scale

      self._jitted["dense"] = jax.jit(run)
    probs, boxes = self._jitted["dense"](self.variables, batch)
    return (probs[0], boxes[0]) if single else (probs, boxes)

  def detect(self, images: Any, *, batch_size: int = 8,
             score_threshold: float | None = None) -> list[dict[str, np.ndarray]]:
    """Per-image ``{"boxes", "scores", "classes"}`` NumPy arrays (only the valid rows), in
    jitted batches of ``batch_size`` (the last one padded, so one compilation)."""
    out = []
    for chunk, n in batches(images, batch_size):
      det = jax.device_get(self(chunk, score_threshold=score_threshold))
      for i in range(n):
        k = int(det.num_valid[i])
        out.append({"boxes": det.boxes[i, :k], "scores": det.scores[i, :k],
                    "classes": det.classes[i, :k]})
    return out


  @property
  def has_masks(self) -> bool:
    """Whether the model also segments its detections (Mask R-CNN: ``detect_masks``)."""
    return _model_can(self.spec.model, "detect_masks")

  def detect_instances(self, images: Any, *, batch_size: int = 8,
                       score_threshold: float | None = None,
                       mask_threshold: float = 0.5) -> list[dict[str, np.ndarray]]:
    """:meth:`detect` plus ``"masks"``: ``[k, H, W]`` boolean instance masks at each input
    image's size (mask probability ``> mask_threshold`` inside the detection's box), for a
    model with :attr:`has_masks` (Mask R-CNN); images as :meth:`detect`'s (one array)."""
    if not self.has_masks:
      raise ValueError(f"{self.spec.model} has no mask head: use detect (boxes only).")
    threshold = self.spec.score_threshold if score_threshold is None else float(
        score_threshold)
    if not 0.0 <= threshold <= 1.0:
      raise ValueError(f"`score_threshold` must be in [0, 1], got {score_threshold!r}.")
    key = ("masks", threshold, float(mask_threshold))
    if key not in self._jitted:
      spec, model = self.spec, self.model
      from jaxvision.models import mask_rcnn  # pylint: disable=import-outside-toplevel

      def run(variables, images):
        in_h, in_w = images.shape[1:3]
        x = _resize(_to_float(images), spec.image_size)
        boxes, scores, classes, count, masks = model.apply(
            variables, x, method="detect_masks", score_threshold=threshold,
            nms_iou=spec.nms_iou, max_detections=spec.max_detections)
        scale = jnp.array([in_w / spec.image_size[1], in_h / spec.image_size[0]] * 2,
                          jnp.float32)
        boxes = boxes * scale
        pasted = mask_rcnn.paste_masks(masks, boxes, (in_h, in_w),
                                       threshold=float(mask_threshold))
        return boxes, scores, classes, count, pasted

      self._jitted[key] = jax.jit(run)
    out = []
    for chunk, n in batches(images, batch_size):
      boxes, scores, classes, count, masks = jax.device_get(
          self._jitted[key](self.variables, jnp.asarray(chunk)))
      for i in range(n):
        k = int(count[i])
        out.append({"boxes": boxes[i, :k], "scores": scores[i, :k], "classes": classes[i, :k],
                    "masks": masks[i, :k]})
    return out


class Segmenter(_Predictor):
  """A semantic segmentation network; ``segmenter(images)`` gives int32 class masks at the
  input's size (logits resized bilinearly before the arg-max)."""

  _SPEC = SegmenterSpec
  _KIND = "segmenter"

  def _fn(self):
    if None not in self._jitted:
      spec, model = self.spec, self.model

      def run(variables, images):
        in_hw = images.shape[1:3]
        logits = model.apply(variables, _resize(_to_float(images), spec.image_size),
                             train=False)
        logits = _resize(logits.astype(jnp.float32), tuple(in_hw))
        return jnp.argmax(logits, axis=-1).astype(jnp.int32)

      self._jitted[None] = jax.jit(run)
    return self._jitted[None]

  def __call__(self, images: Any) -> jax.Array | list[jax.Array]:
    """``[H, W]`` for one image, ``[B, H, W]`` for a batch, a list for a list of sizes."""
    batch, single = _check_images(images)
    fn = self._fn()
    if isinstance(batch, list):
      return [fn(self.variables, im)[0] for im in batch]
    out = fn(self.variables, batch)
    return out[0] if single else out

  def segment(self, images: Any, *, batch_size: int = 8) -> np.ndarray:
    """``[N, H, W]`` masks of same-size images in jitted batches (the last one padded)."""
    return np.concatenate([np.asarray(self(chunk))[:n] for chunk, n in batches(images,
                                                                               batch_size)])


def batches(images: Any, batch_size: int) -> Iterator[tuple[np.ndarray, int]]:
  """``(batch [batch_size, ...], real rows)`` over ``images`` (an array, or a sequence of
  equally sized images); the last batch is padded with zeros to ``batch_size``."""
  if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
    raise ValueError(f"`batch_size` must be a positive int, got {batch_size!r}.")
  n = len(images)
  for i in range(0, n, batch_size):
    chunk = np.asarray(images[i:i + batch_size])
    k = len(chunk)
    if k < batch_size:
      chunk = np.concatenate([chunk, np.zeros((batch_size - k,) + chunk.shape[1:],
                                              chunk.dtype)])
    yield chunk, k


def _records(source: Any, keys: Sequence[str], batch_size: int
             ) -> Iterator[dict[str, np.ndarray]]:
  """Consecutive batches of ``keys`` of a dict of arrays or a random-access source."""
  if isinstance(source, Mapping):
    n = len(source[keys[0]])
    for i in range(0, n, batch_size):
      yield {k: np.asarray(source[k][i:i + batch_size]) for k in keys}
    return
  arrays = getattr(source, "arrays", None)
  if isinstance(arrays, Mapping):
    yield from _records(arrays, keys, batch_size)
    return
  n = len(source)
  for i in range(0, n, batch_size):
    recs = [source[j] for j in range(i, min(i + batch_size, n))]
    yield {k: np.stack([np.asarray(r[k]) for r in recs]) for k in keys}


def ground_truth_lists(arrays: Mapping[str, np.ndarray]) -> list[dict[str, np.ndarray]]:
  """Per-image ``{"boxes", "classes"}`` from padded ``{"boxes", "classes", "num_boxes"}``."""
  return [{"boxes": np.asarray(arrays["boxes"][i, :n]),
           "classes": np.asarray(arrays["classes"][i, :n])}
          for i, n in enumerate(np.asarray(arrays["num_boxes"]))]


def evaluate_detector(detector: Detector, data: Any, *, batch_size: int = 8,
                      map_score_threshold: float = 0.05) -> dict[str, Any]:
  """The detection numbers of ``detector`` on a data set.

  ``data``: a dict of padded arrays ``{"image", "boxes", "classes", "num_boxes"}`` or a
  random-access source of such records. Returns the book's per-image ``miou`` /
  ``precision`` / ``recall`` (:func:`jaxvision.metrics.detection_summary`) at the spec's
  score threshold, VOC ``map50`` and COCO ``map`` / ``coco_map50`` from the detections at
  ``map_score_threshold`` (low, so the precision-recall curve is complete). For a detector
  with a mask head (:attr:`Detector.has_masks`) on data with a semantic ``"mask"``, also
  ``mask_map50``: VOC mask AP at mask IoU 0.5 against the instances of the ground truth
  boxes (:func:`jaxvision.metrics.mask_average_precision`).
  """
  keys = ("image", "boxes", "classes", "num_boxes")
  masks = detector.has_masks and _has_field(data, "mask")
  book, low, truth, mask_pred, mask_truth = [], [], [], [], []
  for rec in _records(data, keys + (("mask",) if masks else ()), batch_size):
    book += detector.detect(rec["image"], batch_size=batch_size)
    if masks:
      dets = detector.detect_instances(rec["image"], batch_size=batch_size,
                                       score_threshold=map_score_threshold)
      low += [{k: d[k] for k in ("boxes", "scores", "classes")} for d in dets]
      mask_pred += [{k: d[k] for k in ("masks", "scores", "classes")} for d in dets]
      mask_truth += _instance_truth(rec)
    else:
      low += detector.detect(rec["image"], batch_size=batch_size,
                             score_threshold=map_score_threshold)
    truth += ground_truth_lists(rec)
  summary = metrics.detection_summary(book, truth)
  voc = metrics.average_precision_voc(low, truth, iou_threshold=0.5)
  coco = metrics.coco_map(low, truth)
  out = {"miou": float(summary["miou"]), "precision": float(summary["precision"]),
         "recall": float(summary["recall"]), "map50": float(voc["map"]),
         "map": float(coco["map"]), "coco_map50": float(coco["map50"]),
         "num_images": len(truth)}
  if masks:
    out["mask_map50"] = float(metrics.mask_average_precision(mask_pred, mask_truth)["map"])
  return out


def _has_field(data: Any, name: str) -> bool:
  if isinstance(data, Mapping):
    return name in data
  arrays = getattr(data, "arrays", None)
  if isinstance(arrays, Mapping):
    return name in arrays
  try:
    return len(data) > 0 and name in data[0]
  except (TypeError, KeyError, IndexError):
    return False


def _instance_truth(rec: Mapping[str, np.ndarray]) -> list[dict[str, np.ndarray]]:
  """Per-image ``{"masks" [n, H, W] bool, "classes" [n]}``: instance ``g`` is the pixels of
  its class in the semantic ``mask`` whose centres are inside its box
  (:func:`jaxvision.models.mask_rcnn.instance_masks`)."""
  from jaxvision.models import mask_rcnn  # pylint: disable=import-outside-toplevel
  inst = np.asarray(mask_rcnn.instance_masks(jnp.asarray(rec["mask"]),
                                             jnp.asarray(rec["boxes"], jnp.float32),
                                             jnp.asarray(rec["classes"])))
  out = []
  for i, n in enumerate(np.asarray(rec["num_boxes"])):
    out.append({"masks": np.moveaxis(inst[i, ..., :int(n)], -1, 0) > 0.5,
                "classes": np.asarray(rec["classes"][i, :int(n)])})
  return out


def detector_card(detector: Detector, images: Any, *, batch_size: int = 8,
                  repeats: int = 3) -> dict[str, Any]:
  """What a comparison table of detectors shows about one trained detector.

  ``images``: ``[N, H, W, 3]`` images for the inference timing (``N >= batch_size``).
  Returns ``{"model", "params" (scalars in the parameters), "inference_images_per_s"
  (jitted ``detector(batch)`` on ``batch_size`` images, after one warm-up call, best of
  ``repeats`` passes over the images), "train_images_per_s" (steps x batch size / training
  wall time, evaluations included; None when the weights do not record it),
  "train_wall_seconds", "train_steps", "test_metrics"}`` (the last three from the weights'
  training record).
  """
  images = np.asarray(images)
  if images.ndim != 4 or len(images) < batch_size:
    raise ValueError(f"`images` must be [N, H, W, 3] with N >= batch_size={batch_size}, got "
                     f"shape {images.shape}.")
  if int(repeats) < 1:
    raise ValueError(f"`repeats` must be >= 1, got {repeats!r}.")
  chunks = [images[i:i + batch_size] for i in range(0, len(images) - batch_size + 1,
                                                    batch_size)]
  jax.block_until_ready(detector(chunks[0]))
  best = float("inf")
  for _ in range(int(repeats)):
    start = time.perf_counter()
    for c in chunks:
      jax.block_until_ready(detector(c))
    best = min(best, time.perf_counter() - start)
  t = dict(detector.spec.training)
  cfg = t.get("config", {})
  wall, steps = t.get("wall_seconds"), t.get("steps")
  per_s = None
  if wall and steps and cfg.get("batch_size"):
    per_s = float(steps) * float(cfg["batch_size"]) / float(wall)
  return {"model": detector.spec.model,
          "params": models.count_params(detector.variables.get("params", {})),
          "inference_images_per_s": len(chunks) * batch_size / best,
          "train_images_per_s": per_s, "train_wall_seconds": wall, "train_steps": steps,
          "test_metrics": dict(t.get("test_metrics", {}))}


def diagnose_detector(detector: Detector, data: Any, *, match_iou: float = 0.5,
                      size_edges: Sequence[float] = (0.16, 0.28), batch_size: int = 8,
                      iou_threshold: float = 0.5) -> dict[str, Any]:
  """Why ``detector`` misses objects of ``data`` (padded ``{"image", "boxes", "classes",
  "num_boxes"}`` arrays or records): per ground-truth box, its class, its size bucket (box
  height over image height against ``size_edges``), its anchor coverage
  (:func:`jaxvision.metrics.anchor_coverage` at ``match_iou``, in the model's input
  pixels), whether the detections at the spec's score threshold find it, and if not why
  (:func:`jaxvision.metrics.classify_misses`).

  Returns ``{"classes", "size_bucket", "best_anchor_iou", "positives", "reason" (one per
  box), "found", "num_images"}`` as NumPy arrays over all boxes of all images.
  """
  anchors = np.asarray(detector.anchors, np.float64)
  h, w = detector.spec.image_size
  cols = {k: [] for k in ("classes", "size_bucket", "best_anchor_iou", "positives", "reason",
                          "found")}
  num_images = 0
  for rec in _records(data, ("image", "boxes", "classes", "num_boxes"), batch_size):
    truth = ground_truth_lists(rec)
    dets = detector.detect(rec["image"], batch_size=batch_size)
    found = metrics.ground_truth_found(dets, truth, iou_threshold=iou_threshold)
    for start, (chunk, n) in zip(range(0, len(truth), batch_size),
                                 batches(rec["image"], batch_size)):
      # Padded like `detect`'s batches: one compilation for every chunk.
      probs, boxes = jax.device_get(detector.dense_outputs(chunk))
      in_h, in_w = chunk.shape[1:3]
      to_model = np.array([w / in_w, h / in_h] * 2)
      for i in range(n):
        gt = truth[start + i]
        gt_model = np.asarray(gt["boxes"], np.float64).reshape(-1, 4) * to_model
        cov = metrics.anchor_coverage(anchors, gt_model, match_iou=match_iou)
        cols["reason"] += metrics.classify_misses(
            probs[i], np.asarray(boxes[i]) * to_model, anchors, gt_model, gt["classes"],
            found[start + i], score_threshold=detector.spec.score_threshold,
            match_iou=match_iou, iou_threshold=iou_threshold)
        cols["classes"].append(np.asarray(gt["classes"]).reshape(-1))
        cols["size_bucket"].append(metrics.size_bucket(gt_model, h, size_edges))
        cols["best_anchor_iou"].append(cov["best_iou"])
        cols["positives"].append(cov["positives"])
        cols["found"].append(found[start + i])
    num_images += len(truth)
  out = {k: (np.array(v) if k == "reason" else np.concatenate(v) if v else np.zeros(0))
         for k, v in cols.items()}
  out["num_images"] = num_images
  return out


def evaluate_segmenter(segmenter: Segmenter, data: Any, *, batch_size: int = 8
                       ) -> dict[str, Any]:
  """The segmentation numbers of ``segmenter`` on ``{"image", "mask"}`` records.

  Returns the book's per-image ``miou`` and ``pixel_accuracy``
  (:func:`jaxvision.metrics.segmentation_summary`) and, from one confusion matrix over all
  pixels, ``dataset_miou``, ``dataset_pixel_accuracy``, ``per_class_iou`` and
  ``dataset_foreground_miou`` (the mean IoU of the classes other than class 0 -- the digits
  of the digit scenes -- that occur; None when none does).
  """
  labels, preds = _segment_all(segmenter, data, batch_size)
  return _segmentation_numbers(labels, preds, segmenter.spec.num_classes)


def _segment_all(segmenter: Segmenter, data: Any, batch_size: int):
  labels, preds = [], []
  for rec in _records(data, ("image", "mask"), batch_size):
    labels.append(rec["mask"])
    preds.append(segmenter.segment(rec["image"], batch_size=batch_size))
  return np.concatenate(labels), np.concatenate(preds)


def _segmentation_numbers(labels, preds, c):
  book = metrics.segmentation_summary(labels, preds, num_classes=c)
  cm = metrics.confusion_matrix(labels, preds, num_classes=c)
  dataset = metrics.segmentation_metrics_from_confusion(cm)
  foreground = [v for v in dataset["per_class_iou"][1:] if v is not None and np.isfinite(v)]
  return {"miou": float(book["miou"]), "pixel_accuracy": float(book["pixel_accuracy"]),
          "dataset_miou": float(dataset["miou"]),
          "dataset_foreground_miou": float(np.mean(foreground)) if foreground else None,
          "dataset_pixel_accuracy": float(dataset["pixel_accuracy"]),
          "per_class_iou": [None if v is None or not np.isfinite(v) else float(v)
                        for v in dataset["per_class_iou"]],
          "num_images": int(len(labels))}


def diagnose_segmenter(segmenter: Segmenter, data: Any, *, batch_size: int = 8,
                       boundary_width: int = 1) -> dict[str, Any]:
  """What ``segmenter`` gets wrong on ``{"image", "mask"}`` records (class 0 the background).

  Returns :func:`evaluate_segmenter`'s numbers plus ``"errors"``
  (:func:`jaxvision.metrics.segmentation_errors`: wrong pixels by kind and by boundary band /
  interior, IoU without the band) and ``"object_confusion"``
  (:func:`jaxvision.metrics.object_confusion` as a list of lists: the class each connected
  ground-truth object was mostly predicted as).
  """
  labels, preds = _segment_all(segmenter, data, batch_size)
  c = segmenter.spec.num_classes
  out = _segmentation_numbers(labels, preds, c)
  out["errors"] = metrics.segmentation_errors(labels, preds, num_classes=c,
                                              boundary_width=boundary_width)
  out["object_confusion"] = metrics.object_confusion(labels, preds, num_classes=c).tolist()
  return out
