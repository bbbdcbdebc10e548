"""Detection losses: softmax / focal classification, L1 / smooth-L1 regression, hard negatives.

The source book's SSD (Atienza, ch. 11) trains with categorical cross entropy over every
anchor plus an L1 loss on the offsets of the positive (non-background) anchors; its
``--smooth-l1`` flag swaps in the Huber loss (delta 1) and ``--improved-loss`` the focal loss
(gamma 2, alpha 0.25) with Huber. The SSD paper (Liu et al. 2016) instead keeps only the
hardest negatives, three per positive. All of these are here as pure functions over
``[..., A, C]`` / ``[..., A, 4]`` arrays, plus :func:`ssd_loss` that combines them.

Conventions: class id 0 is the background; ``labels`` are ints in ``[0, C)``; an anchor is
positive when its label is not 0. Probabilities come from a softmax over the last axis of the
logits, computed in float32.

Labels out of ``[0, C)``. On concrete ``labels`` (eager calls) every loss raises
``ValueError`` naming the first bad value and the range. On traced ``labels`` (inside ``jit``,
``grad`` or ``vmap``, where the values are unknown) the result is defined instead of wrapping
around as an index would: a negative label is *ignored* (its loss is 0 with a zero gradient,
and :func:`ssd_loss` counts the anchor neither as a positive nor as a negative), and a label
``>= C`` gives a NaN loss, so that it cannot go unnoticed.

Hyper-parameters (``gamma``, ``alpha``, ``delta``, ``ratio``; ``ssd_loss``'s
``focal_gamma``, ``focal_alpha``, ``hard_negative_ratio``) are static Python numbers: a
traced one raises ``TypeError`` naming it, as :func:`jaxvision.ops.nms` does for thresholds.
"""

from __future__ import annotations

from typing import Literal

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike

from jaxvision import _checks

__all__ = ["softmax_cross_entropy", "focal_loss", "soft_dice_loss", "l1_loss",
           "smooth_l1_loss", "hard_negative_mask", "ssd_loss"]


def _labels_check(logits: jax.Array, labels: jax.Array) -> None:
  if logits.ndim < 1 or logits.shape[:-1] != labels.shape:
    raise ValueError(f"`labels` must have shape {logits.shape[:-1]} (the logits' shape "
                     f"without the class axis), got {labels.shape}.")
  if not jnp.issubdtype(labels.dtype, jnp.integer):
    raise TypeError(f"`labels` must be integer class ids, got dtype {labels.dtype}.")
  _checks.check_class_ids(labels, "labels", logits.shape[-1])


def _check_non_negative(value, name: str) -> float:
  """A static Python number ``>= 0`` (``TypeError`` for a tracer), as a float."""
  v = _checks.check_float(value, name)
  if v < 0:
    raise ValueError(f"`{name}` must be >= 0, got {value!r}.")
  return v


def _log_p_true(logits: jax.Array, labels: jax.Array) -> jax.Array:
  """``log softmax(logits)[label]`` in float32, at the label clipped into ``[0, C)``."""
  logp = jax.nn.log_softmax(logits.astype(jnp.float32), axis=-1)
  index = jnp.clip(labels, 0, logits.shape[-1] - 1).astype(jnp.int32)
  return jnp.take_along_axis(logp, index[..., None], axis=-1)[..., 0]


def _out_of_range(loss: jax.Array, labels: jax.Array, num_classes: int) -> jax.Array:
  """The traced contract: 0 where ``labels < 0`` (ignored), NaN where ``labels >= C``."""
  loss = jnp.where(labels < 0, 0.0, loss)
  return jnp.where(labels >= num_classes, jnp.nan, loss)


def softmax_cross_entropy(logits: ArrayLike, labels: ArrayLike) -> jax.Array:
  """Per-element categorical cross entropy ``-log softmax(logits)[label]``.

  Args:
    logits: ``[..., C]`` unnormalized class scores.
    labels: ``[...]`` integer class ids in ``[0, C)``. Concrete labels outside raise
      ``ValueError``; traced ones give 0 (negative: ignored) or NaN (``>= C``).

  Returns:
    ``[...]`` float32 losses.

  Raises:
    ValueError: for mismatched shapes, or concrete labels outside ``[0, C)``.
    TypeError: for non-integer labels.

  >>> softmax_cross_entropy(jnp.array([[0., 0.], [10., 0.]]), jnp.array([1, 0])).round(4)
  Array([0.6931, 0.    ], dtype=float32)
  """
  logits, labels = jnp.asarray(logits), jnp.asarray(labels)
  _labels_check(logits, labels)
  return _out_of_range(-_log_p_true(logits, labels), labels, logits.shape[-1])


def focal_loss(logits: ArrayLike, labels: ArrayLike, *, gamma: float = 2.0,
               alpha: float = 0.25) -> jax.Array:
  """Softmax focal loss ``-alpha (1 - p_t)^gamma log p_t`` (Lin et al. 2017), per element.

  ``p_t`` is the softmax probability of the true class. As in the source book's
  ``focal_loss_categorical``, the same ``alpha`` weighs every class (background included);
  ``gamma = 0, alpha = 1`` is the cross entropy.

  Args:
    logits: ``[..., C]`` unnormalized class scores.
    labels: ``[...]`` integer class ids in ``[0, C)``. Concrete labels outside raise
      ``ValueError``; traced ones give 0 (negative: ignored) or NaN (``>= C``).
    gamma: focusing exponent, a static Python number ``>= 0``.
    alpha: weight, a static Python number ``> 0``.

  Returns:
    ``[...]`` float32 losses.

  Raises:
    ValueError: for mismatched shapes, concrete labels outside ``[0, C)``, or ``gamma`` /
      ``alpha`` out of range.
    TypeError: for non-integer labels, or a ``gamma`` / ``alpha`` that is not a Python
      number (a tracer included).

  >>> round(float(focal_loss(jnp.array([[0., 0.]]), jnp.array([0]))[0]), 5)  # .25*.25*ln 2
  0.04332
  """
  gamma = _check_non_negative(gamma, "gamma")
  alpha = _checks.check_positive(alpha, "alpha")
  logits, labels = jnp.asarray(logits), jnp.asarray(labels)
  _labels_check(logits, labels)
  logp_t = _log_p_true(logits, labels)
  p_t = jnp.exp(logp_t)
  if gamma == 0:  # (1 - p_t)^0 is 1 even where p_t = 1.
    weight = jnp.ones_like(p_t)
  else:
    # (1 - p_t)^gamma through a safe base: at p_t = 1 the gradient of x^gamma is 0 * inf
    # (gamma < 1) and would be NaN; the loss is flat there, so its gradient is 0.
    one_minus = jnp.maximum(1.0 - p_t, 0.0)
    inside = one_minus > 0
    weight = jnp.where(inside, jnp.power(jnp.where(inside, one_minus, 1.0), gamma), 0.0)
  return _out_of_range(-alpha * weight * logp_t, labels, logits.shape[-1])


def soft_dice_loss(logits: ArrayLike, labels: ArrayLike, *, skip_background: bool = True,
                   smooth: float = 1.0) -> jax.Array:
  """``1 - mean_c Dice_c`` with softmax probabilities (Milletari et al. 2016), one scalar.

  For each class ``c``, over *all* elements (a batch of masks counts as one volume, so a
  class absent from one image does not give that image a degenerate term):
  ``Dice_c = (2 sum p_c y_c + smooth) / (sum p_c + sum y_c + smooth)``, ``p = softmax(logits)``,
  ``y`` the one-hot labels. A class absent from the labels scores ``smooth / (sum p_c +
  smooth)``: predicting it anywhere costs. The mean runs over classes ``1..C-1`` with
  ``skip_background`` (class 0 is the background, whose Dice is near 1 and says little),
  else over all ``C``. Where cross entropy weighs every pixel the same, so that the many
  background pixels dominate, this term weighs every class the same; it is usually added to
  the cross entropy.

  Args:
    logits: ``[..., C]`` unnormalized class scores, ``C >= 2``.
    labels: ``[...]`` integer class ids in ``[0, C)`` (concrete labels outside raise; traced
      ones count as no class).
    skip_background: leave class 0 out of the mean.
    smooth: additive smoothing, a static Python number ``> 0``.

  Returns:
    A float32 scalar in ``[0, 1]``.

  >>> logits = jnp.log(jnp.array([[0.5, 0.5], [0.0, 1.0]]) + 1e-30)
  >>> round(float(soft_dice_loss(logits, jnp.array([1, 1]), smooth=1e-6)), 4)  # 1 - 3/3.5
  0.1429
  """
  smooth = _checks.check_positive(smooth, "smooth")
  logits, labels = jnp.asarray(logits), jnp.asarray(labels)
  _labels_check(logits, labels)
  c = logits.shape[-1]
  if c < 2:
    raise ValueError(f"`logits` must have at least 2 classes, got {c}.")
  p = jax.nn.softmax(logits.astype(jnp.float32), axis=-1).reshape(-1, c)
  y = jax.nn.one_hot(labels.reshape(-1), c, dtype=jnp.float32)
  inter, p_sum, y_sum = (p * y).sum(0), p.sum(0), y.sum(0)
  dice = (2.0 * inter + smooth) / (p_sum + y_sum + smooth)
  if skip_background:
    dice = dice[1:]
  return 1.0 - jnp.mean(dice)


def l1_loss(predictions: ArrayLike, targets: ArrayLike) -> jax.Array:
  """``|predictions - targets|`` summed over the last axis: ``[..., D] -> [...]``.

  >>> l1_loss(jnp.array([[1., -2.]]), jnp.array([[0., 0.]]))
  Array([3.], dtype=float32)
  """
  predictions, targets = _pair(predictions, targets)
  return jnp.sum(jnp.abs(predictions - targets), axis=-1)


def smooth_l1_loss(predictions: ArrayLike, targets: ArrayLike, *,
                   delta: float = 1.0) -> jax.Array:
  """Huber loss summed over the last axis: ``0.5 d^2`` for ``|d| <= delta``, else
  ``delta (|d| - 0.5 delta)``; ``[..., D] -> [...]`` (Keras' ``Huber``, the book's choice).

  ``delta`` is a static Python number ``> 0`` (``TypeError`` for anything else, a tracer
  included; ``ValueError`` for ``<= 0``).

  >>> smooth_l1_loss(jnp.array([[0.5, 3.]]), jnp.array([[0., 0.]]))
  Array([2.625], dtype=float32)
  """
  delta = _checks.check_positive(delta, "delta")
  predictions, targets = _pair(predictions, targets)
  d = jnp.abs(predictions - targets)
  return jnp.sum(jnp.where(d <= delta, 0.5 * d * d, delta * (d - 0.5 * delta)), axis=-1)


def _pair(predictions, targets):
  predictions = jnp.asarray(predictions, jnp.float32)
  targets = jnp.asarray(targets, jnp.float32)
  if predictions.shape != targets.shape:
    raise ValueError(f"`predictions` {predictions.shape} and `targets` {targets.shape} must "
                     f"have the same shape.")
  return predictions, targets


def hard_negative_mask(losses: ArrayLike, positive: ArrayLike, *, ratio: float = 3.0,
                       min_negatives: int = 0) -> jax.Array:
  """The SSD paper's hard negative mining: per image, the ``ratio * #positives`` negatives
  of largest loss (ties to the lower index).

  Args:
    losses: ``[..., A]`` per-anchor classification losses.
    positive: ``[..., A]`` bool, the positive anchors.
    ratio: negatives kept per positive (3 in the paper).
    min_negatives: negatives kept even in an image without positives.

  Returns:
    ``[..., A]`` bool mask of the selected negatives (never a positive).

  >>> hard_negative_mask(jnp.array([.1, .9, .5, .7]), jnp.array([True, False, False, False]),
  ...                    ratio=2).tolist()
  [False, True, False, True]
  """
  losses = jnp.asarray(losses, jnp.float32)
  positive = jnp.asarray(positive)
  if positive.shape != losses.shape or positive.dtype != jnp.bool_:
    raise ValueError(f"`positive` must be a bool array of shape {losses.shape}, got "
                     f"{positive.dtype} {positive.shape}.")
  ratio = _check_non_negative(ratio, "ratio")
  return _hard_negatives(losses, positive, ~positive, ratio=ratio, min_negatives=min_negatives)


def _hard_negatives(losses, positive, negative, *, ratio, min_negatives):
  """:func:`hard_negative_mask` choosing among the ``negative`` anchors only (``ssd_loss``'s
  ignored anchors are neither positive nor negative)."""
  neg_loss = jnp.where(negative, losses, -jnp.inf)
  order = jnp.argsort(-neg_loss, axis=-1, stable=True)
  # The rank of every anchor is the inverse permutation of `order`: a scatter, not a second
  # sort (which cost as much as the first on XLA:CPU).
  flat = order.reshape(int(np.prod(order.shape[:-1])), order.shape[-1])
  rows = jnp.arange(flat.shape[0])[:, None]
  rank = jnp.zeros_like(flat).at[rows, flat].set(
      jnp.broadcast_to(jnp.arange(flat.shape[-1], dtype=flat.dtype), flat.shape),
      unique_indices=True).reshape(order.shape)
  num_pos = jnp.sum(positive, axis=-1, keepdims=True)
  num_neg = jnp.maximum(jnp.floor(ratio * num_pos), min_negatives)
  num_neg = jnp.minimum(num_neg, jnp.sum(negative, axis=-1, keepdims=True))
  return (rank < num_neg) & negative


def ssd_loss(class_logits: ArrayLike, offsets: ArrayLike, labels: ArrayLike,
             offset_targets: ArrayLike, *,
             classification: Literal["ce", "focal"] = "ce",
             localization: Literal["l1", "smooth_l1"] = "l1",
             hard_negative_ratio: float | None = None,
             focal_gamma: float = 2.0, focal_alpha: float = 0.25,
             localization_weight: float = 1.0) -> tuple[jax.Array, dict[str, jax.Array]]:
  """The SSD training loss over a batch of anchors, normalised by the number of positives.

  ``loss = (sum_cls + w * sum_loc) / max(N_pos, 1)`` where ``N_pos`` counts the positive
  anchors of the whole batch, ``sum_loc`` is the L1 or Huber offset loss summed over the
  positives, and ``sum_cls`` the cross entropy (or focal loss) summed over every anchor (the
  book: no mining) or, with ``hard_negative_ratio``, over the positives and the hardest
  ``ratio`` negatives per positive (the SSD paper).

  Labels out of ``[0, C)``: concrete ones raise ``ValueError``. Traced ones: an anchor with a
  negative label is ignored (no classification or localization loss, not counted in
  ``N_pos``, never mined as a hard negative); a label ``>= C`` counts as a positive whose
  classification loss is NaN, so the loss is NaN.

  Args:
    class_logits: ``[..., A, C]`` class logits (class 0 = background).
    offsets: ``[..., A, 4]`` predicted offsets.
    labels: ``[..., A]`` int target classes in ``[0, C)`` (0 = background); see above for
      labels outside.
    offset_targets: ``[..., A, 4]`` target offsets (ignored where the label is 0).
    classification: ``"ce"`` or ``"focal"``.
    localization: ``"l1"`` or ``"smooth_l1"``.
    hard_negative_ratio: ``None`` (every anchor enters the classification loss) or the
      negatives-per-positive ratio, a static Python number ``>= 0``.
    focal_gamma: focal loss gamma (static, see :func:`focal_loss`).
    focal_alpha: focal loss alpha (static).
    localization_weight: ``w``.

  Returns:
    ``(loss, {"classification", "localization", "num_positives"})``, scalars.

  >>> logits = jnp.array([[[5., 0.], [0., 5.]]]); labels = jnp.array([[0, 1]])
  >>> off = jnp.zeros((1, 2, 4)); tgt = jnp.ones((1, 2, 4))
  >>> loss, parts = ssd_loss(logits, off, labels, tgt)
  >>> float(parts["localization"]), int(parts["num_positives"])
  (4.0, 1)
  """
  class_logits = jnp.asarray(class_logits)
  labels = jnp.asarray(labels)
  offsets, offset_targets = jnp.asarray(offsets), jnp.asarray(offset_targets)
  for name, arr in (("offsets", offsets), ("offset_targets", offset_targets)):
    if arr.shape != labels.shape + (4,):
      raise ValueError(f"`{name}` must have shape {labels.shape + (4,)} (the labels' shape "
                       f"and 4), got {arr.shape}.")
  if classification == "ce":
    cls = softmax_cross_entropy(class_logits, labels)
  elif classification == "focal":
    focal_gamma = _check_non_negative(focal_gamma, "focal_gamma")
    focal_alpha = _checks.check_positive(focal_alpha, "focal_alpha")
    cls = focal_loss(class_logits, labels, gamma=focal_gamma, alpha=focal_alpha)
  else:
    raise ValueError(f"`classification` must be 'ce' or 'focal', got {classification!r}.")
  if localization == "l1":
    loc = l1_loss(offsets, offset_targets)
  elif localization == "smooth_l1":
    loc = smooth_l1_loss(offsets, offset_targets)
  else:
    raise ValueError(f"`localization` must be 'l1' or 'smooth_l1', got {localization!r}.")
  positive = labels > 0
  negative = labels == 0  # a negative label (traced only) is neither: ignored
  if hard_negative_ratio is None:
    cls_mask = positive | negative
  else:
    ratio = _check_non_negative(hard_negative_ratio, "hard_negative_ratio")
    cls_mask = positive | _hard_negatives(jax.lax.stop_gradient(cls), positive, negative,
                                          ratio=ratio, min_negatives=0)
  num_pos = jnp.sum(positive)
  denom = jnp.maximum(num_pos, 1).astype(jnp.float32)
  cls_sum = jnp.sum(jnp.where(cls_mask, cls, 0.0)) / denom
  loc_sum = jnp.sum(jnp.where(positive, loc, 0.0)) / denom
  loss = cls_sum + localization_weight * loc_sum
  return loss, {"classification": cls_sum, "localization": loc_sum, "num_positives": num_pos}
