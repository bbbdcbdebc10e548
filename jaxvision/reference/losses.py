"""NumPy oracles for the detection losses: float64 textbook formulas, one element at a time.

The slow, obviously-correct versions of ``jaxvision.ops.losses``: each loss is evaluated for
one anchor at a time from its formula; hard negative mining sorts every image's negatives in
a Python loop. They import NumPy only, so they share no code with what they check.

Conventions (the same contract as the ops):

* ``logits`` are ``[..., C]``, ``labels`` ``[...]`` ints in ``[0, C)``; class 0 is the
  background and an anchor is positive when its label is not 0.
* Labels outside ``[0, C)`` follow the ops' traced (``jit``) contract, not their eager
  ``ValueError``: a negative label is ignored (loss 0; in ``ssd_loss`` neither positive nor
  negative), a label ``>= C`` gives a NaN loss (and is positive in ``ssd_loss``).
* ``p_t = softmax(logits)[label]``; cross entropy ``-log p_t``; focal loss
  ``-alpha (1 - p_t)^gamma log p_t`` with ``0^0 = 1``.
* The regression losses sum over the last axis (``[..., D] -> [...]``); smooth L1 is the
  Huber loss ``0.5 d^2`` for ``|d| <= delta`` and ``delta (|d| - 0.5 delta)`` beyond.
* Hard negatives: per image, ``k = min(max(floor(ratio * #pos), min_negatives), #neg)``
  negatives of largest loss, ties to the lower index.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["softmax_cross_entropy", "focal_loss", "l1_loss", "smooth_l1_loss",
           "hard_negative_mask", "ssd_loss", "soft_dice_loss"]


def _log_softmax_at(row: np.ndarray, label: int) -> float:
  """``log softmax(row)[label]`` for one ``[C]`` row, via the max-shifted log-sum-exp.

  Only called for a label in ``[0, C)``; callers handle the others.
  """
  m = max(float(v) for v in row)
  total = 0.0
  for v in row:
    total += math.exp(float(v) - m)
  return float(row[label]) - m - math.log(total)


def softmax_cross_entropy(logits, labels) -> np.ndarray:
  """``[...]`` float64 ``-log softmax(logits)[label]``.

  >>> softmax_cross_entropy([[0., 0.]], [1]).round(4).tolist()
  [0.6931]
  """
  logits = np.asarray(logits, np.float64)
  labels = np.asarray(labels)
  out = np.zeros(labels.shape, np.float64)
  for idx in np.ndindex(labels.shape):
    label = int(labels[idx])
    if label < 0:
      out[idx] = 0.0  # ignored
    elif label >= logits.shape[-1]:
      out[idx] = math.nan
    else:
      out[idx] = -_log_softmax_at(logits[idx], label)
  return out


def focal_loss(logits, labels, *, gamma: float = 2.0, alpha: float = 0.25) -> np.ndarray:
  """``[...]`` float64 ``-alpha (1 - p_t)^gamma log p_t``.

  >>> round(float(focal_loss([[0., 0.]], [0])[0]), 5)
  0.04332
  """
  logits = np.asarray(logits, np.float64)
  labels = np.asarray(labels)
  out = np.zeros(labels.shape, np.float64)
  for idx in np.ndindex(labels.shape):
    label = int(labels[idx])
    if label < 0:  # ignored
      continue
    if label >= logits.shape[-1]:
      out[idx] = math.nan
      continue
    log_p = _log_softmax_at(logits[idx], label)
    p = math.exp(log_p)
    weight = 1.0 if gamma == 0 else max(1.0 - p, 0.0) ** gamma
    out[idx] = -alpha * weight * log_p
  return out


def l1_loss(predictions, targets) -> np.ndarray:
  """``[..., D] -> [...]`` float64 ``sum |p - t|``.

  >>> l1_loss([[1., -2.]], [[0., 0.]]).tolist()
  [3.0]
  """
  return _sum_over_last_axis(predictions, targets, lambda d: d)


def smooth_l1_loss(predictions, targets, *, delta: float = 1.0) -> np.ndarray:
  """``[..., D] -> [...]`` float64 Huber loss summed over the last axis.

  >>> smooth_l1_loss([[0.5, 3.]], [[0., 0.]]).tolist()
  [2.625]
  """
  return _sum_over_last_axis(
      predictions, targets, lambda d: 0.5 * d * d if d <= delta else delta * (d - 0.5 * delta))


def _sum_over_last_axis(predictions, targets, loss) -> np.ndarray:
  """``[..., D] -> [...]`` float64 ``sum_k loss(|p_k - t_k|)``, one element at a time."""
  p = np.asarray(predictions, np.float64)
  t = np.asarray(targets, np.float64)
  out = np.zeros(p.shape[:-1], np.float64)
  for idx in np.ndindex(out.shape):
    for k in range(p.shape[-1]):
      out[idx] += loss(abs(p[idx + (k,)] - t[idx + (k,)]))
  return out


def hard_negative_mask(losses, positive, *, ratio: float = 3.0,
                       min_negatives: int = 0, negative=None) -> np.ndarray:
  """``[..., A]`` bool: per image, the ``k`` negatives of largest loss (ties: lower index).

  ``negative`` (default: every anchor that is not positive) lists the anchors that may be
  chosen; ``ssd_loss`` leaves its ignored anchors out of it.

  >>> hard_negative_mask([.1, .9, .5, .7], [True, False, False, False], ratio=2).tolist()
  [False, True, False, True]
  """
  losses = np.asarray(losses, np.float64)
  positive = np.asarray(positive, bool)
  negative = ~positive if negative is None else np.asarray(negative, bool)
  out = np.zeros(losses.shape, bool)
  for idx in np.ndindex(losses.shape[:-1]):
    row, pos, neg = losses[idx], positive[idx], negative[idx]
    negatives = [a for a in range(len(row)) if neg[a]]
    k = max(math.floor(ratio * int(pos.sum())), min_negatives)
    k = min(k, len(negatives))
    # Largest loss first; Python's sort is stable, so equal losses keep the lower index first.
    negatives.sort(key=lambda a: -row[a])
    for a in negatives[:k]:
      out[idx + (a,)] = True
  return out


def ssd_loss(class_logits, offsets, labels, offset_targets, *, classification="ce",
             localization="l1", hard_negative_ratio=None, focal_gamma=2.0, focal_alpha=0.25,
             localization_weight=1.0):
  """``(loss, {"classification", "localization", "num_positives"})`` as the op documents.

  ``loss = (sum_cls + w sum_loc) / max(N_pos, 1)`` over the whole batch; ``sum_cls`` runs
  over every anchor, or with ``hard_negative_ratio`` over the positives and the mined
  negatives; ``sum_loc`` over the positives. Anchors with a negative label are ignored.
  """
  labels = np.asarray(labels)
  if classification == "ce":
    cls = softmax_cross_entropy(class_logits, labels)
  else:
    cls = focal_loss(class_logits, labels, gamma=focal_gamma, alpha=focal_alpha)
  if localization == "l1":
    loc = l1_loss(offsets, offset_targets)
  else:
    loc = smooth_l1_loss(offsets, offset_targets)
  positive = labels > 0
  negative = labels == 0
  if hard_negative_ratio is None:
    keep = positive | negative
  else:
    keep = positive | hard_negative_mask(cls, positive, ratio=hard_negative_ratio,
                                         negative=negative)
  num_pos = int(positive.sum())
  cls_sum, loc_sum = 0.0, 0.0
  for idx in np.ndindex(labels.shape):
    if keep[idx]:
      cls_sum += cls[idx]
    if positive[idx]:
      loc_sum += loc[idx]
  denom = max(num_pos, 1)
  cls_sum, loc_sum = cls_sum / denom, loc_sum / denom
  return cls_sum + localization_weight * loc_sum, {
      "classification": cls_sum, "localization": loc_sum, "num_positives": num_pos}


def soft_dice_loss(logits: np.ndarray, labels: np.ndarray, *, skip_background: bool = True,
                   smooth: float = 1.0) -> float:
  """``1 - mean_c (2 sum p_c y_c + smooth) / (sum p_c + sum y_c + smooth)``, one element at
  a time, over all elements of ``logits [..., C]``."""
  logits = np.asarray(logits, np.float64)
  c = logits.shape[-1]
  rows, labs = logits.reshape(-1, c), np.asarray(labels).reshape(-1)
  inter, p_sum, y_sum = [0.0] * c, [0.0] * c, [0.0] * c
  for row, lab in zip(rows, labs):
    m = max(float(v) for v in row)
    z = sum(math.exp(float(v) - m) for v in row)
    for k in range(c):
      p = math.exp(float(row[k]) - m) / z
      p_sum[k] += p
      if k == int(lab):
        inter[k] += p
        y_sum[k] += 1.0
  classes = range(1, c) if skip_background else range(c)
  dice = [(2 * inter[k] + smooth) / (p_sum[k] + y_sum[k] + smooth) for k in classes]
  return 1.0 - sum(dice) / len(dice)
