"""Classification + localisation: one network that names the single object in an image and
draws one box around it (the first step from classification to detection).

    model = LocalizerSmall()
    logits, boxes = model.apply(variables, images)     # [B, K], [B, 4] xyxy in [0, 1]
    loss, (metrics, batch_stats) = losses(model, params, batch_stats, images, labels, boxes_true)

A conv trunk (BatchNorm, ReLU, strided) to a global average, a shared hidden layer, then two
heads: class logits, and the box as ``sigmoid`` centre and size (fractions of the image),
returned as ``xyxy`` fractions. The loss is cross-entropy plus ``box_weight`` times (L1 on the
four coordinates + ``1 - GIoU``).
"""

from __future__ import annotations

import functools
from typing import Any, Mapping, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax

from jaxvision import ops

__all__ = ["Localizer", "LocalizerSmall", "LocalizerTiny", "losses", "box_from_center"]


def box_from_center(center_size: jax.Array) -> jax.Array:
  """``[..., 4]`` ``(cx, cy, w, h)`` -> ``xyxy``."""
  cx, cy, w, h = jnp.moveaxis(center_size, -1, 0)
  return jnp.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], axis=-1)


class Localizer(nn.Module):
  """Conv trunk -> (class logits ``[B, K]``, box ``[B, 4]`` xyxy fractions of the image).

  Attributes:
    num_classes: outputs of the class head.
    features: ``(channels, stride)`` of each 3 x 3 conv of the trunk.
    hidden: width of the shared dense layer.
    coordinate_features: append two channels holding the pixel's ``y`` and ``x`` in
      ``[-1, 1]`` to the input (CoordConv, Liu et al. 2018): a pooled trunk otherwise has to
      infer position from padding effects alone.
  """

  num_classes: int = 10
  features: Sequence[tuple[int, int]] = ((16, 2), (32, 1), (32, 2), (64, 1), (64, 2),
                                         (128, 1))
  hidden: int = 256
  coordinate_features: bool = True

  @nn.compact
  def __call__(self, x: jax.Array, *, train: bool = False) -> tuple[jax.Array, jax.Array]:
    if self.coordinate_features:
      b, h, w, _ = x.shape
      yy, xx = jnp.meshgrid(jnp.linspace(-1, 1, h), jnp.linspace(-1, 1, w), indexing="ij")
      coords = jnp.broadcast_to(jnp.stack([yy, xx], -1)[None], (b, h, w, 2)).astype(x.dtype)
      x = jnp.concatenate([x, coords], axis=-1)
    for i, (f, s) in enumerate(self.features):
      x = nn.Conv(f, (3, 3), strides=s, use_bias=False, name=f"conv{i}")(x)
      x = nn.BatchNorm(use_running_average=not train, momentum=0.9, name=f"bn{i}")(x)
      x = nn.relu(x)
    # Average and max pooling: the max keeps where the strongest response is large.
    x = jnp.concatenate([jnp.mean(x, axis=(1, 2)), jnp.max(x, axis=(1, 2))], axis=-1)
    x = nn.relu(nn.Dense(self.hidden, name="hidden")(x))
    logits = nn.Dense(self.num_classes, name="classifier")(x)
    box = box_from_center(nn.sigmoid(nn.Dense(4, name="box")(x)))
    return logits, box


LocalizerSmall = functools.partial(Localizer)
LocalizerTiny = functools.partial(Localizer, features=((8, 2), (16, 2)), hidden=32)


def losses(model: Localizer, params: Mapping[str, Any], batch_stats: Mapping[str, Any],
           images: jax.Array, labels: jax.Array, boxes: jax.Array, rng: jax.Array | None = None,
           *, box_weight: float = 5.0):
  """``(loss, (metrics, batch_stats))``: cross-entropy + ``box_weight`` * (L1 + 1 - GIoU)
  against ``boxes [B, 4]`` xyxy fractions."""
  variables = {"params": params, "batch_stats": batch_stats}
  (logits, pred), updates = model.apply(variables, images, train=True,
                                        mutable=["batch_stats"],
                                        rngs=None if rng is None else {"dropout": rng})
  ce = jnp.mean(optax.softmax_cross_entropy_with_integer_labels(logits, labels))
  l1 = jnp.mean(jnp.sum(jnp.abs(pred - boxes), axis=-1))
  giou = ops.generalized_box_iou(pred[:, None], boxes[:, None], implementation="xla")[:, 0, 0]
  iou = ops.box_iou(pred[:, None], boxes[:, None], implementation="xla")[:, 0, 0]
  loss = ce + box_weight * (l1 + jnp.mean(1.0 - giou))
  metrics = {"cross_entropy": ce, "l1": l1, "mean_iou": jnp.mean(iou),
             "accuracy": jnp.mean((jnp.argmax(logits, -1) == labels).astype(jnp.float32))}
  return loss, (metrics, updates["batch_stats"])
