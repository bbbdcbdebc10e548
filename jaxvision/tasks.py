"""Training tasks for detectors and segmenters: what :func:`jaxvision.train.train_and_evaluate`
needs (init, loss, optimizer, data, evaluation) built from a :class:`~jaxvision.inference.
DetectorSpec` or :class:`~jaxvision.inference.SegmenterSpec` and a data source.

    spec = DetectorSpec(model="SSDSmall", num_classes=11, image_size=(120, 160))
    task = ssd_task(spec, train_source, optimizer=optax.adam(1e-3), test_data=test_source)
    out = train_and_evaluate(TrainConfig(num_steps=1000, batch_size=32), workdir, task=task)
    Detector(spec, out.state.variables()).save("ssd.msgpack")

The experiment CLIs (``python -m experiments.ssd``, ``.fcn``, ``.segnet``, ``.unet``) are
thin wrappers around these.
"""

from __future__ import annotations

import dataclasses
import functools
import os
from typing import Any, Callable, Mapping

import jax
import jax.numpy as jnp
import optax

from jaxvision import ops
from jaxvision.data import make_pipeline, random_zoom_with_boxes
from jaxvision.data import color_jitter as jitter_colors
from jaxvision.inference import (Detector, DetectorSpec, Segmenter, SegmenterSpec, spec_model,
                                 evaluate_detector, evaluate_segmenter)
from jaxvision import models
from jaxvision.models import ssd as ssd_lib
from jaxvision.train import Task

__all__ = ["model_init", "process_local_pipeline", "ssd_task", "faster_rcnn_task", "yolo_task",
           "mask_rcnn_task",
           "segmentation_task",
           "pixel_cross_entropy", "SegmentationConfig", "SEGMENTATION_CONFIGS",
           "segmentation_learning_rate", "segmentation_experiment", "segmentation_table"]


def model_init(model, image_size, initial_variables: Mapping[str, Any] | None = None
               ) -> Callable[[jax.Array], tuple[Any, Any]]:
  """``init(rng) -> (params, batch_stats)`` for the train loop.

  With ``initial_variables`` (fine-tuning, ``--restore-weights``) it returns those.
  Otherwise the parameters are drawn with an ``"rbg"`` key made from bits of ``rng``: a
  deterministic function of the seed that XLA:CPU compiles about 10x faster than the default
  threefry key for these conv nets (the draws may differ between backends).
  """
  if initial_variables is not None:
    fixed = jax.device_get(dict(initial_variables))

    def restored(rng):
      del rng
      return (jax.tree.map(jnp.asarray, fixed["params"]),
              jax.tree.map(jnp.asarray, fixed.get("batch_stats", {})))

    return restored

  def init(rng):
    key = jax.random.wrap_key_data(jax.random.bits(rng, (4,), jnp.uint32), impl="rbg")
    x = jnp.zeros((1, *tuple(image_size), 3), jnp.float32)
    variables = model.init(key, x, train=False)
    return variables["params"], variables.get("batch_stats", {})

  return init


def process_local_pipeline(source, *, batch_size: int, seed: int, transform=None):
  """This process's rows of each global batch (the loop's ``train_iter`` contract).

  ``batch_size`` is this process's share (what the loop asks for). Every process walks the
  same seeded stream of global batches (``batch_size`` times the process count) and reads
  only its rows ``[p * batch_size, (p + 1) * batch_size)`` of each (``make_pipeline``'s
  ``shard``), so the global batch is the same for any number of processes.
  """
  count, index = jax.process_count(), jax.process_index()
  return make_pipeline(source, batch_size=batch_size * count, seed=seed, transform=transform,
                       shard=None if count == 1 else (index, count))


def _images(x):
  return x.astype(jnp.float32) / 255.0


def _fields(source, keep):
  arrays = getattr(source, "arrays", None)
  if isinstance(arrays, Mapping):  # an ArraySource: drop what the task does not read
    from jaxvision.data import ArraySource  # pylint: disable=import-outside-toplevel
    return ArraySource({k: v for k, v in arrays.items() if k in keep})
  return source


def _check_photometric(color_jitter, noise_std) -> None:
  if not 0.0 <= float(color_jitter) < 1.0:
    raise ValueError(f"`color_jitter` must be in [0, 1), got {color_jitter!r}.")
  if not 0.0 <= float(noise_std) <= 1.0:
    raise ValueError(f"`noise_std` must be in [0, 1], got {noise_std!r}.")


def _photometric(images, rng_color, rng_noise, color_jitter: float, noise_std: float):
  """Colour jitter of strength ``color_jitter`` and Gaussian noise of a std drawn in ``[0,
  noise_std]``, per image, on ``[B, H, W, 3]`` floats in ``[0, 1]``; 0 turns either off."""
  if color_jitter > 0:
    s = float(color_jitter)
    keys = jax.random.split(rng_color, images.shape[0])
    images = jax.vmap(functools.partial(jitter_colors, brightness=s, contrast=s,
                                        saturation=s, hue=s / 3))(images, keys)
  if noise_std > 0:
    k1, k2 = jax.random.split(rng_noise)
    std = jax.random.uniform(k1, (images.shape[0], 1, 1, 1), maxval=float(noise_std))
    images = jnp.clip(images + std * jax.random.normal(k2, images.shape), 0.0, 1.0)
  return images


def ssd_task(spec: DetectorSpec, train_data, *, optimizer: optax.GradientTransformation,
             match_iou: float = 0.6, hard_negatives: float | None = 3.0,
             classification: str = "ce", localization: str = "l1", test_data=None,
             eval_batch_size: int = 8, initial_variables=None, ignore_iou: float | None = None,
             zoom: tuple[float, float] | None = None, zoom_probability: float = 0.5,
             color_jitter: float = 0.0, noise_std: float = 0.0) -> Task:
  """The SSD training task (Atienza ch. 11; Liu et al. 2016).

  Targets from :func:`jaxvision.models.ssd.make_targets` (bipartite + ``match_iou``
  matching, offsets encoded with ``spec.variances``), loss :func:`jaxvision.ops.ssd_loss`
  (``classification`` ``"ce"``/``"focal"``, ``localization`` ``"l1"``/``"smooth_l1"``,
  ``hard_negatives`` negatives per positive or None for the book's CE over every anchor).

  Args:
    spec: the detector to train (model, classes, input size, anchors, post-processing).
    train_data: a random-access source of ``{"image" uint8 [H, W, 3] at spec.image_size,
      "boxes", "classes", "num_boxes"}`` records.
    optimizer: the optax optimizer (with its schedule).
    test_data: optional test records for ``Task.evaluate``
      (:func:`jaxvision.inference.evaluate_detector`).
    initial_variables: start from these instead of a random init (fine-tuning).
    ignore_iou: the ignore band of :func:`jaxvision.models.ssd.make_targets`.
    zoom: ``(lo, hi)`` scale range of SSD's zoom-in / zoom-out augmentation
      (:func:`jaxvision.data.random_zoom_with_boxes`, applied in the jitted step with
      probability ``zoom_probability``); None: no augmentation.
    color_jitter: photometric augmentation strength ``s`` (brightness, contrast and
      saturation factors in ``[1 - s, 1 + s]``, hue shift up to ``s / 3``;
      :func:`jaxvision.data.color_jitter`); 0: none.
    noise_std: Gaussian pixel noise of a standard deviation drawn uniformly in ``[0,
      noise_std]`` per image; 0: none.
  """
  _check_photometric(color_jitter, noise_std)
  model = spec_model(spec)
  anchors = ssd_lib.make_anchors(model, spec.image_size, sizes=spec.anchor_sizes,
                                 aspect_ratios=spec.aspect_ratios,
                                 aspect_ratio_unit=spec.aspect_ratio_unit)
  train_data = _fields(train_data, ("image", "boxes", "classes", "num_boxes"))

  def loss_fn(params, batch_stats, batch, rng):
    images, boxes = _images(batch["image"]), batch["boxes"].astype(jnp.float32)
    rng_zoom = rng_color = rng_noise = None  # rng unused (maybe None) without augmentation
    if zoom is not None or color_jitter > 0 or noise_std > 0:
      rng_zoom, rng_color, rng_noise = jax.random.split(rng, 3)
    if zoom is not None:
      keys = jax.random.split(rng_zoom, images.shape[0])
      images, boxes = jax.vmap(functools.partial(
          random_zoom_with_boxes, scale_range=tuple(zoom), p=zoom_probability))(
              images, boxes, keys)
    images = _photometric(images, rng_color, rng_noise, color_jitter, noise_std)
    labels, targets = ssd_lib.make_targets(anchors, boxes, batch["classes"],
                                           batch["num_boxes"], match_iou=match_iou,
                                           variances=spec.variances, ignore_iou=ignore_iou)
    out, updates = model.apply({"params": params, "batch_stats": batch_stats},
                               images, train=True, mutable=["batch_stats"])
    loss, parts = ops.ssd_loss(out["classes"], out["offsets"], labels, targets,
                               classification=classification, localization=localization,
                               hard_negative_ratio=hard_negatives)
    return loss, (parts, updates["batch_stats"])

  return _task(spec, model, loss_fn, train_data, optimizer=optimizer, test_data=test_data,
               evaluator=(Detector, evaluate_detector), eval_batch_size=eval_batch_size,
               initial_variables=initial_variables)


def _check_two_stage(rpn_batch, rois_per_image, positive_fraction, color_jitter, noise_std):
  """The sampling and augmentation arguments of the Faster / Mask R-CNN tasks."""
  _check_photometric(color_jitter, noise_std)
  for name, v in (("rpn_batch", rpn_batch), ("rois_per_image", rois_per_image)):
    if isinstance(v, bool) or not isinstance(v, int) or v < 1:
      raise ValueError(f"`{name}` must be a positive int, got {v!r}.")
  if not 0.0 < float(positive_fraction) <= 1.0:
    raise ValueError(f"`positive_fraction` must be in (0, 1], got {positive_fraction!r}.")


def faster_rcnn_task(spec: DetectorSpec, train_data, *, optimizer: optax.GradientTransformation,
                     rpn_batch: int = 256, rois_per_image: int = 64,
                     positive_fraction: float = 0.25, test_data=None, eval_batch_size: int = 8,
                     initial_variables=None, zoom: tuple[float, float] | None = None,
                     zoom_probability: float = 0.5, color_jitter: float = 0.0,
                     noise_std: float = 0.0) -> Task:
  """The Faster R-CNN training task (Ren et al. 2015): :func:`jaxvision.models.faster_rcnn.
  losses` (RPN objectness + box, ROI head classification + box) on ``rpn_batch`` sampled
  anchors and ``rois_per_image`` sampled ROIs per image. ``spec.model`` names a
  :class:`jaxvision.models.FasterRCNN` variant; data, augmentation and evaluation as
  :func:`ssd_task`.
  """
  from jaxvision.models import faster_rcnn  # pylint: disable=import-outside-toplevel
  _check_two_stage(rpn_batch, rois_per_image, positive_fraction, color_jitter, noise_std)
  model = spec_model(spec)
  if not isinstance(model, faster_rcnn.FasterRCNN):
    raise ValueError(f"`spec.model` must be a FasterRCNN variant, got {spec.model!r}.")
  train_data = _fields(train_data, ("image", "boxes", "classes", "num_boxes"))

  def loss_fn(params, batch_stats, batch, rng):
    rng, rng_aug = jax.random.split(rng)
    images, boxes = _augmented(batch, rng_aug, zoom, zoom_probability, color_jitter,
                               noise_std)
    return faster_rcnn.losses(model, params, batch_stats, images, boxes, batch["classes"],
                              batch["num_boxes"], rng, rpn_batch=rpn_batch,
                              rois_per_image=rois_per_image,
                              positive_fraction=positive_fraction)

  return _task(spec, model, loss_fn, train_data, optimizer=optimizer, test_data=test_data,
               evaluator=(Detector, evaluate_detector), eval_batch_size=eval_batch_size,
               initial_variables=initial_variables)


def mask_rcnn_task(spec: DetectorSpec, train_data, *, optimizer: optax.GradientTransformation,
                   rpn_batch: int = 256, rois_per_image: int = 64,
                   positive_fraction: float = 0.25, test_data=None, eval_batch_size: int = 8,
                   initial_variables=None, zoom: tuple[float, float] | None = None,
                   zoom_probability: float = 0.5, color_jitter: float = 0.0,
                   noise_std: float = 0.0) -> Task:
  """The Mask R-CNN training task (He et al. 2017): :func:`faster_rcnn_task`'s losses plus
  the mask loss (:func:`jaxvision.models.mask_rcnn.losses`). Records need the semantic
  ``"mask"`` ``[H, W]`` (the scenes' and the book's segmentation layout); instance maps are
  built from it and the boxes and zoomed together with the image."""
  from jaxvision.models import mask_rcnn  # pylint: disable=import-outside-toplevel
  _check_two_stage(rpn_batch, rois_per_image, positive_fraction, color_jitter, noise_std)
  model = spec_model(spec)
  if not isinstance(model, mask_rcnn.MaskRCNN):
    raise ValueError(f"`spec.model` must be a MaskRCNN variant, got {spec.model!r}.")
  train_data = _fields(train_data, ("image", "boxes", "classes", "num_boxes", "mask"))

  def loss_fn(params, batch_stats, batch, rng):
    rng, rng_aug = jax.random.split(rng)
    boxes = batch["boxes"].astype(jnp.float32)
    inst = mask_rcnn.instance_masks(batch["mask"], boxes, batch["classes"])
    g = inst.shape[-1]
    both = {"image": jnp.concatenate([_images(batch["image"]), inst], axis=-1) * 255.0,
            "boxes": boxes}
    images, boxes = _augmented(both, rng_aug, zoom, zoom_probability, 0.0, 0.0)
    images, inst = images[..., :-g], images[..., -g:]
    rng_color, rng_noise = jax.random.split(jax.random.fold_in(rng_aug, 1))
    images = _photometric(images, rng_color, rng_noise, color_jitter, noise_std)
    return mask_rcnn.losses(model, params, batch_stats, images, boxes, batch["classes"],
                            batch["num_boxes"], batch["mask"], rng, rpn_batch=rpn_batch,
                            rois_per_image=rois_per_image,
                            positive_fraction=positive_fraction, instances=inst)

  return _task(spec, model, loss_fn, train_data, optimizer=optimizer, test_data=test_data,
               evaluator=(Detector, evaluate_detector), eval_batch_size=eval_batch_size,
               initial_variables=initial_variables)


def _augmented(batch, rng, zoom, zoom_probability, color_jitter, noise_std):
  """Float images and boxes of a detection batch after zoom and photometric augmentation."""
  images, boxes = _images(batch["image"]), batch["boxes"].astype(jnp.float32)
  rng_zoom, rng_color, rng_noise = jax.random.split(rng, 3)
  if zoom is not None:
    keys = jax.random.split(rng_zoom, images.shape[0])
    images, boxes = jax.vmap(functools.partial(
        random_zoom_with_boxes, scale_range=tuple(zoom), p=zoom_probability))(
            images, boxes, keys)
  return _photometric(images, rng_color, rng_noise, color_jitter, noise_std), boxes


def yolo_task(spec: DetectorSpec, train_data, *, optimizer: optax.GradientTransformation,
              lambda_coord: float = 5.0, lambda_noobj: float = 0.5, test_data=None,
              eval_batch_size: int = 8, initial_variables=None,
              zoom: tuple[float, float] | None = None, zoom_probability: float = 0.5,
              color_jitter: float = 0.0, noise_std: float = 0.0) -> Task:
  """The YOLO v1 training task (Redmon et al. 2016): :func:`jaxvision.models.yolo.loss` with
  v1's ``lambda_coord`` and ``lambda_noobj``. ``spec.model`` names a
  :class:`jaxvision.models.YOLO` variant; data, augmentation and evaluation as
  :func:`ssd_task`."""
  from jaxvision.models import yolo  # pylint: disable=import-outside-toplevel
  _check_photometric(color_jitter, noise_std)
  for name, v in (("lambda_coord", lambda_coord), ("lambda_noobj", lambda_noobj)):
    if not float(v) >= 0:
      raise ValueError(f"`{name}` must be >= 0, got {v!r}.")
  model = spec_model(spec)
  if not isinstance(model, yolo.YOLO):
    raise ValueError(f"`spec.model` must be a YOLO variant, got {spec.model!r}.")
  train_data = _fields(train_data, ("image", "boxes", "classes", "num_boxes"))

  def loss_fn(params, batch_stats, batch, rng):
    images, boxes = _augmented(batch, rng, zoom, zoom_probability, color_jitter, noise_std)
    out, updates = model.apply({"params": params, "batch_stats": batch_stats}, images,
                               train=True, mutable=["batch_stats"])
    total, parts = yolo.loss(out, boxes, batch["classes"], batch["num_boxes"],
                             images.shape[1:3], lambda_coord=float(lambda_coord),
                             lambda_noobj=float(lambda_noobj))
    return total, (parts, updates["batch_stats"])

  return _task(spec, model, loss_fn, train_data, optimizer=optimizer, test_data=test_data,
               evaluator=(Detector, evaluate_detector), eval_batch_size=eval_batch_size,
               initial_variables=initial_variables)


def _task(spec, model, loss_fn, train_data, *, optimizer, test_data, evaluator,
          eval_batch_size, initial_variables) -> Task:
  """The :class:`Task` of ``loss_fn``: sharded data, and evaluation of the state through one
  predictor (``evaluator = (Detector | Segmenter, evaluate_fn)``) whose jitted functions
  compile once per run."""
  predictor_cls, evaluate_fn = evaluator

  def train_iter(seed, batch_size):
    return process_local_pipeline(train_data, batch_size=batch_size, seed=seed)

  evaluate = None
  if test_data is not None:
    predictor = None

    def evaluate(state):
      nonlocal predictor
      variables = {"params": state.params, "batch_stats": state.batch_stats}
      if predictor is None:
        predictor = predictor_cls(spec, variables)
      predictor.variables = variables
      return evaluate_fn(predictor, test_data, batch_size=eval_batch_size)

  return Task(init=model_init(model, spec.image_size, initial_variables), loss_fn=loss_fn,
              optimizer=optimizer, train_iter=train_iter, evaluate=evaluate)


def pixel_cross_entropy(logits: jax.Array, labels: jax.Array) -> jax.Array:
  """Mean pixel-wise softmax cross-entropy: ``logits [B, H, W, C]``, ``labels [B, H, W]``."""
  ce = optax.softmax_cross_entropy_with_integer_labels(logits.astype(jnp.float32),
                                                       labels.astype(jnp.int32))
  return jnp.mean(ce)


SEGMENTATION_LOSSES = ("ce", "ce+dice")


def segmentation_task(spec: SegmenterSpec, train_data, *,
                      optimizer: optax.GradientTransformation, test_data=None,
                      eval_batch_size: int = 8, initial_variables=None,
                      loss: str = "ce", color_jitter: float = 0.0,
                      noise_std: float = 0.0) -> Task:
  """Pixel-wise softmax cross-entropy training of a segmentation model (Atienza ch. 12).

  ``loss``: ``"ce"`` (the book's mean pixel cross entropy) or ``"ce+dice"`` (plus
  :func:`jaxvision.ops.soft_dice_loss` over the classes other than class 0, which weighs
  every class the same where the cross entropy is dominated by the background pixels).
  ``color_jitter`` and ``noise_std``: the photometric augmentation of :func:`ssd_task`,
  applied in the jitted step (masks are unchanged); 0 turns either off.

  ``train_data``: a random-access source of ``{"image" uint8 [H, W, 3], "mask" [H, W]}``
  at ``spec.image_size``; ``test_data`` the same for ``Task.evaluate``
  (:func:`jaxvision.inference.evaluate_segmenter`).
  """
  if loss not in SEGMENTATION_LOSSES:
    raise ValueError(f"`loss` must be one of {SEGMENTATION_LOSSES}, got {loss!r}.")
  _check_photometric(color_jitter, noise_std)
  model = spec_model(spec)
  train_data = _fields(train_data, ("image", "mask"))

  def loss_fn(params, batch_stats, batch, rng):
    images = _images(batch["image"])
    if color_jitter > 0 or noise_std > 0:  # rng unused otherwise (callers may pass None)
      rng_color, rng_noise = jax.random.split(rng)
      images = _photometric(images, rng_color, rng_noise, color_jitter, noise_std)
    logits, updates = model.apply({"params": params, "batch_stats": batch_stats},
                                  images, train=True, mutable=["batch_stats"])
    labels = batch["mask"].astype(jnp.int32)
    accuracy = jnp.mean(jnp.argmax(logits, axis=-1) == labels)
    ce = pixel_cross_entropy(logits, labels)
    logs = {"pixel_accuracy": accuracy}
    total = ce
    if loss == "ce+dice":
      dice = ops.soft_dice_loss(logits, labels)
      total = ce + dice
      logs.update(cross_entropy=ce, dice=dice)
    return total, (logs, updates["batch_stats"])

  return _task(spec, model, loss_fn, train_data, optimizer=optimizer, test_data=test_data,
               evaluator=(Segmenter, evaluate_segmenter), eval_batch_size=eval_batch_size,
               initial_variables=initial_variables)


# ---------------------------------------------------------------------------------------------
# The segmentation recipes of ``python -m experiments.fcn`` / ``.segnet`` / ``.unet``.
#
# Data (``--dataset``): digit scenes by default (11 classes: background and the digits 0-9),
# the book's layout (``book:DIR``) or Oxford-IIIT pets (``pets``, TFDS). Loss: pixel-wise
# softmax cross-entropy (the book), plus the soft Dice of the digit classes in ``cpu``
# (``--loss``). Optimizer: Adam with the book's step decays scaled to the step budget (x0.5 /
# x0.1 / x0.05 after 40 / 60 / 80 % of the steps), a cosine decay, or a cosine after a 5%
# warm-up. Configs: ``cpu`` (120 x 160 scenes of 1-6 digits, 3000 train / 500 test, batch 8,
# the small variant, Adam 8e-3 warm-up + cosine, CE + Dice, under 30 minutes on one core; the
# measurements behind it are in ``experiments/results/segmentation_diagnosis.md``), ``book``
# (480 x 640, 1000 / 100 scenes, batch 4, 25,000 steps, the full-size variant; an
# accelerator run), ``pets`` (Oxford-IIIT Pet trimaps at 128 x 128; an accelerator run),
# ``tiny`` (tests).

@dataclasses.dataclass(frozen=True)
class SegmentationConfig:
  """One segmentation recipe: data, model, schedule."""

  model: str = "FCNSmall"
  image_size: tuple[int, int] = (120, 160)
  digit_size: tuple[float, float] = (0.2, 0.6)
  num_digits: tuple[int, int] = (1, 6)
  train_scenes: int = 3000
  test_scenes: int = 500
  batch_size: int = 8
  steps: int = 600
  learning_rate: float = 5e-3
  schedule: str = "book"  # "book" (x0.5 / x0.1 / x0.05 at 40 / 60 / 80 %), "cosine" or
  # "warmup_cosine" (5% linear warm-up, then cosine)
  loss: str = "ce"  # "ce" or "ce+dice" (see segmentation_task)
  color_jitter: float = 0.0  # photometric augmentation strength (0: none)
  noise_std: float = 0.0  # pixel noise, std up to this per image (0: none)
  eval_every: int = 0
  checkpoint_every: int = 200
  log_every: int = 25
  eval_batch_size: int = 10
  pictures: int = 6


_VARIANTS = {"fcn": ("FCNSmall", "FCNBook", "FCNTiny"),
             "segnet": ("SegNetSmall", "SegNet", "SegNetTiny"),
             "unet": ("UNetSmall", "UNet", "UNetTiny")}
FAMILIES = tuple(_VARIANTS)
# Training steps of the cpu config: under 30 minutes on one core of the 2-core machine, at
# the steps/s measured there (batch 8, 120 x 160): FCNSmall 1.0-1.1, UNetSmall 1.0-1.1,
# SegNetSmall 2.25. One core trains these models about as fast as two (XLA:CPU's threads gain little at
# batch 8: FCNSmall 1.12 steps/s on 2 cores, 1.05-1.1 on one).
CPU_STEPS = {"fcn": 1750, "segnet": 3600, "unet": 1750}


def _segmentation_configs(family: str) -> dict[str, SegmentationConfig]:
  small, book, tiny = _VARIANTS[family]
  return {
      "cpu": SegmentationConfig(model=small, steps=CPU_STEPS[family], learning_rate=8e-3,
                                schedule="warmup_cosine", loss="ce+dice",
                                eval_every=CPU_STEPS[family] // 3),
      "book": SegmentationConfig(
          model=book, image_size=(480, 640), digit_size=(0.12, 0.6), num_digits=(1, 8),
          train_scenes=1000, test_scenes=100, batch_size=4, steps=25000, learning_rate=1e-3,
          checkpoint_every=1000, log_every=100, eval_batch_size=4),
      # Oxford-IIIT Pet trimaps (``--dataset pets``: 3,680 train / 3,669 test images, resized
      # to 128 x 128), the full-size variant for about 20 epochs: an accelerator run.
      "pets": SegmentationConfig(
          model=book, image_size=(128, 128), batch_size=16, steps=4600, learning_rate=1e-3,
          schedule="warmup_cosine", checkpoint_every=500, log_every=100, eval_batch_size=16),
      "tiny": SegmentationConfig(
          model=tiny, image_size=(32, 40), digit_size=(0.4, 0.8), num_digits=(1, 2),
          train_scenes=16, test_scenes=6, batch_size=4, steps=3, checkpoint_every=2,
          log_every=1, eval_batch_size=4, pictures=3),
  }


SEGMENTATION_CONFIGS: dict[str, dict[str, SegmentationConfig]] = {
    f: _segmentation_configs(f) for f in FAMILIES}


SCHEDULES = ("book", "cosine", "warmup_cosine")


def segmentation_learning_rate(cfg: SegmentationConfig):
  """Adam's learning rate: the book's step decays scaled to ``steps``, cosine, or cosine
  after a linear warm-up over the first 5% of the steps."""
  if cfg.schedule == "book":
    n = cfg.steps
    # piecewise_constant_schedule multiplies the scales up: 0.5, 0.5 * 0.2, 0.1 * 0.5.
    return optax.piecewise_constant_schedule(
        cfg.learning_rate, {int(0.4 * n): 0.5, int(0.6 * n): 0.2, int(0.8 * n): 0.5})
  if cfg.schedule == "cosine":
    return optax.cosine_decay_schedule(cfg.learning_rate, cfg.steps)
  if cfg.schedule == "warmup_cosine":  # linear warm-up over 5% of the steps, then cosine to 0
    return optax.warmup_cosine_decay_schedule(0.0, cfg.learning_rate, cfg.steps // 20,
                                              cfg.steps)
  raise ValueError(f"`schedule` must be one of {SCHEDULES}, got {cfg.schedule!r}.")


def family_models(family: str) -> tuple[str, ...]:
  """The models of ``jaxvision.models`` a segmentation family trains (``--model``)."""
  prefix = {"fcn": "FCN", "segnet": "SegNet", "unet": "UNet"}[family]
  return tuple(n for n in models.__all__ if n.startswith(prefix))


def _build_segmentation(family: str, cfg: SegmentationConfig, data, initial_variables):
  if cfg.model not in family_models(family):
    from jaxvision import experiment  # pylint: disable=import-outside-toplevel
    raise experiment.FlagError(f"--model must be one of {family_models(family)}, got "
                               f"{cfg.model!r}.")
  spec = SegmenterSpec(model=cfg.model, num_classes=data.num_classes,
                       image_size=cfg.image_size, class_names=data.class_names)
  try:
    _check_photometric(cfg.color_jitter, cfg.noise_std)
  except ValueError as e:
    from jaxvision import experiment  # pylint: disable=import-outside-toplevel
    raise experiment.FlagError(f"--color-jitter / --noise-std: {e}") from None
  task = segmentation_task(spec, data.train, optimizer=optax.adam(segmentation_learning_rate(cfg)),
                           test_data=data.test, eval_batch_size=cfg.eval_batch_size,
                           initial_variables=initial_variables, loss=cfg.loss,
                           color_jitter=cfg.color_jitter, noise_std=cfg.noise_std)
  return spec, task


def _segmentation_flags(group) -> None:
  group.add_argument("--model", default=None,
                     help="a model of jaxvision.models with the config's family, e.g. FCNMedium")
  group.add_argument("--learning-rate", type=float, default=None, help="Adam's peak rate")
  group.add_argument("--schedule", choices=list(SCHEDULES), default=None,
                     help="learning-rate schedule")
  group.add_argument("--color-jitter", type=float, default=None,
                     help="colour jitter strength in [0, 1) (0: none)")
  group.add_argument("--noise-std", type=float, default=None,
                     help="Gaussian pixel noise, std up to this per image (0: none)")
  group.add_argument("--loss", choices=list(SEGMENTATION_LOSSES), default=None,
                     help="pixel cross entropy, or plus the soft Dice of the non-background "
                          "classes")


def _segmentation_summary(results: Mapping[str, Any]) -> str:
  f = lambda k: "-" if results.get(k) is None else f"{results[k]:.3f}"  # noqa: E731
  return (f"{results.get('model')} ({results.get('mode')}): mIoU {f('miou')} (book, per "
          f"image), pixel accuracy {f('pixel_accuracy')}, dataset mIoU {f('dataset_miou')} "
          f"on {results.get('evaluated_on')}; wall {results.get('wall_seconds')} s")


def segmentation_experiment(family: str, *,
                            results_file: str | os.PathLike = "segmentation.json"):
  """The :class:`jaxvision.experiment.PredictorExperiment` of ``family`` (``"fcn"``,
  ``"segnet"``, ``"unet"``): what ``python -m experiments.<family>`` runs."""
  if family not in SEGMENTATION_CONFIGS:
    raise ValueError(f"`family` must be one of {FAMILIES}, got {family!r}.")
  from jaxvision import experiment  # pylint: disable=import-outside-toplevel
  return experiment.PredictorExperiment(
      name=family, kind="segmenter", configs=SEGMENTATION_CONFIGS[family],
      build=functools.partial(_build_segmentation, family), flags=_segmentation_flags,
      flag_fields={"model": "model", "learning_rate": "learning_rate", "schedule": "schedule",
                   "loss": "loss", "color_jitter": "color_jitter", "noise_std": "noise_std"},
      results_file=str(results_file), summary=_segmentation_summary,
      datasets=("scenes", "book:DIR", "pets"))


def segmentation_table(runs: list[dict[str, Any]]) -> str:
  """Markdown table of recorded runs (one row each, in file order), with the book's best FCN
  numbers (mIoU 0.91, pixel accuracy 97.9% on its drinks set) as the reference row."""
  lines = ["| model | params | image size | steps (epochs) | mIoU (book, per image) | "
           "pixel accuracy | dataset mIoU | dataset mIoU of the digits | wall (s) |",
           "|---|---|---|---|---|---|---|---|---|"]
  for r in runs:
    fg = r.get("dataset_foreground_miou")
    lines.append(
        f"| {r['model']} | {r['params']:,} | {'x'.join(map(str, r['image_size']))} | "
        f"{r['steps']} ({r['epochs']}) | {r['miou']:.3f} | {100 * r['pixel_accuracy']:.2f}% | "
        f"{r['dataset_miou']:.3f} | {'-' if fg is None else f'{fg:.3f}'} | "
        f"{r['wall_seconds']} |")
  lines.append("| book FCN (drinks, 4 classes) | | 480x640 | 100 epochs | 0.91 | 97.9% | | | |")
  cmds = "\n".join(f"- {r['model']}: `{r['command']}`" for r in runs)
  return "\n".join(lines) + "\n\nCommands:\n\n" + cmds + "\n"
