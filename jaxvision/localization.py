"""Classification + localisation of one digit per image: data, training task, evaluation.

    train = localization_source("train", 20000, data_dir=d)    # 64 x 64 scenes, one digit
    task = localization_task(LocalizerSmall(), train, optimizer=optax.adam(2e-3),
                             test_data=localization_source("test", 2000, data_dir=d))
    out = train_and_evaluate(TrainConfig(num_steps=1500, batch_size=128), workdir, task=task)
    classes, boxes = localize(LocalizerSmall(), variables, images)   # boxes in pixels

The images are the scene generator's (:mod:`jaxvision.data.scenes`) with exactly one MNIST
digit at a random scale and position on the textured background; records are ``{"image":
uint8 [H, W, 3], "label": digit 0-9, "box": float32 [4] xyxy as fractions of the image}``.
"""

from __future__ import annotations

import os
from typing import Any, Mapping

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxvision import ops
from jaxvision.data import ArraySource
from jaxvision.data.scenes import SceneConfig, SceneSource
from jaxvision.models import localizer as localizer_lib
from jaxvision.tasks import process_local_pipeline
from jaxvision.train import Task

__all__ = ["localization_source", "localization_task", "localize", "evaluate_localizer"]


def localization_source(split: str, num_images: int, *, data_dir: str | os.PathLike | None = None,
                        image_size: int = 64, digit_size: tuple[float, float] = (0.3, 0.9),
                        seed: int = 0, digits: tuple[np.ndarray, np.ndarray] | None = None,
                        style: str = "texture") -> ArraySource:
  """``num_images`` one-digit scenes of ``image_size`` squared (``digit_size``: the digit
  patch's side as fractions of the image, log-uniform) as ``{"image", "label", "box"}``."""
  config = SceneConfig(image_size=(image_size, image_size), num_digits=(1, 1),
                       digit_size=digit_size, style=style)
  scenes = SceneSource(split, num_images, data_dir=data_dir, config=config, seed=seed,
                       digits=digits).arrays
  scale = np.array([image_size] * 4, np.float32)
  return ArraySource({"image": scenes["image"],
                      "label": (scenes["classes"][:, 0] - 1).astype(np.int32),
                      "box": (scenes["boxes"][:, 0] / scale).astype(np.float32)})


def _images(x: Any) -> jax.Array:
  x = jnp.asarray(x)
  if jnp.issubdtype(x.dtype, jnp.integer):
    return x.astype(jnp.float32) / 255.0
  return x.astype(jnp.float32)


def localization_task(model, train_data, *, optimizer: optax.GradientTransformation,
                      test_data=None, box_weight: float = 5.0, image_size: int = 64,
                      eval_batch_size: int = 500) -> Task:
  """The :class:`~jaxvision.train.Task` of a :class:`~jaxvision.models.localizer.Localizer`
  (:func:`jaxvision.models.localizer.losses`); evaluation by :func:`evaluate_localizer`."""
  if not box_weight >= 0:
    raise ValueError(f"`box_weight` must be >= 0, got {box_weight!r}.")

  def init(rng):
    key = jax.random.wrap_key_data(jax.random.bits(rng, (4,), jnp.uint32), impl="rbg")
    v = model.init(key, jnp.zeros((1, image_size, image_size, 3)), train=False)
    return v["params"], v.get("batch_stats", {})

  def loss_fn(params, batch_stats, batch, rng):
    return localizer_lib.losses(model, params, batch_stats, _images(batch["image"]),
                                batch["label"].astype(jnp.int32),
                                batch["box"].astype(jnp.float32), rng, box_weight=box_weight)

  def train_iter(seed, batch_size):
    return process_local_pipeline(train_data, batch_size=batch_size, seed=seed)

  evaluate = None
  if test_data is not None:
    def evaluate(state):
      ev = evaluate_localizer(model, {"params": state.params, "batch_stats": state.batch_stats},
                              test_data, batch_size=eval_batch_size)
      return {k: ev[k] for k in ("accuracy", "iou_above_0.5", "mean_iou")}

  return Task(init=init, loss_fn=loss_fn, optimizer=optimizer, train_iter=train_iter,
              evaluate=evaluate)


_APPLY_CACHE: dict[int, Any] = {}


def localize(model, variables: Mapping[str, Any], images: Any, *, batch_size: int = 500
             ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
  """``(classes [N], boxes [N, 4] xyxy pixels, class probabilities [N, K])`` of
  ``images [N, H, W, 3]`` (uint8 or floats in [0, 1])."""
  x = _images(images)
  if x.ndim != 4:
    raise ValueError(f"`images` must be [N, H, W, C], got shape {tuple(x.shape)}.")
  fn = _APPLY_CACHE.get(id(model))
  if fn is None or fn[0] is not model:
    fn = (model, jax.jit(lambda v, im: model.apply(v, im, train=False)))
    _APPLY_CACHE[id(model)] = fn
  logits, boxes = [], []
  for s in range(0, x.shape[0], batch_size):
    lg, bx = fn[1](variables, x[s:s + batch_size])
    logits.append(np.asarray(lg))
    boxes.append(np.asarray(bx))
  logits, boxes = np.concatenate(logits), np.concatenate(boxes)
  h, w = x.shape[1:3]
  probs = np.asarray(jax.nn.softmax(logits, -1))
  return logits.argmax(-1).astype(np.int32), boxes * np.array([w, h, w, h], np.float32), probs


def evaluate_localizer(model, variables: Mapping[str, Any], data: Any, *,
                       batch_size: int = 500) -> dict[str, Any]:
  """Class accuracy, the fraction of images whose box has IoU > 0.5 with the truth, the mean
  IoU, and the fraction with both right, on a source of ``{"image", "label", "box"}``."""
  arrays = data if isinstance(data, Mapping) else data.arrays
  images = np.asarray(arrays["image"])
  classes, boxes, _ = localize(model, variables, images, batch_size=batch_size)
  h, w = images.shape[1:3]
  truth = np.asarray(arrays["box"], np.float32) * np.array([w, h, w, h], np.float32)
  iou = np.asarray(ops.box_iou(jnp.asarray(boxes)[:, None], jnp.asarray(truth)[:, None],
                               implementation="xla"))[:, 0, 0]
  correct = classes == np.asarray(arrays["label"])
  return {"accuracy": float(correct.mean()), "iou_above_0.5": float((iou > 0.5).mean()),
          "mean_iou": float(iou.mean()), "correct_and_iou_above_0.5":
          float((correct & (iou > 0.5)).mean()), "num_images": int(len(iou))}
