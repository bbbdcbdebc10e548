"""Clustering metrics: Hungarian accuracy, NMI, ARI, and the IIC sub-head summary.

These run on the host, in NumPy/SciPy (float64, exact integer counts); JAX arrays are
accepted and copied to the host. ``labels`` are the ground-truth classes and ``predictions``
the cluster indices, both ``[N]`` non-negative integers. Cluster indices are arbitrary names,
so every metric here is invariant to renaming the clusters (and the classes).

* :func:`contingency_matrix`: ``[num_classes, num_clusters]`` counts.
* :func:`hungarian_accuracy`: the accuracy of the best **one-to-one** map from clusters to
  classes (Kuhn-Munkres, ``scipy.optimize.linear_sum_assignment``), the standard metric of
  IIC and of unsupervised clustering papers. With more clusters than classes (IIC's
  overclustering heads) only ``num_classes`` clusters get a class and the images in the other
  clusters count as wrong; :func:`many_to_one_accuracy` instead gives every cluster its
  majority class, which is *not* Hungarian matching and is never lower.
* :func:`normalized_mutual_info`: ``I(U; V) / ((H(U) + H(V)) / 2)`` (arithmetic mean, the
  default of scikit-learn's ``normalized_mutual_info_score``), natural logs.
* :func:`adjusted_rand_index`: Hubert and Arabie's chance-corrected Rand index.
* :func:`evaluate_heads`: all of the above for each sub-head, and the head the IIC paper
  reports: the one with the lowest training loss.

Ids may be any non-negative integers (``[0, 10**9]`` is two clusters): the accuracies, NMI
and ARI first relabel the classes and the clusters that occur to ``0..K-1``
(``np.unique(..., return_inverse=True)``), so their work and memory grow with the number of
distinct ids and the number of images, never with the size of the ids. Only
:func:`contingency_matrix` (whose rows and columns *are* the ids) and the ``return_mapping``
arrays (indexed by cluster id) are as large as the largest id, and they refuse to allocate
more than ``2**28`` entries, with a ``ValueError`` naming the argument.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from scipy import optimize

__all__ = [
    "contingency_matrix", "hungarian_accuracy", "many_to_one_accuracy",
    "normalized_mutual_info", "adjusted_rand_index", "evaluate_heads",
]


def _as_labels(x: Any, name: str) -> np.ndarray:
  arr = np.asarray(x)
  if arr.ndim != 1:
    raise ValueError(f"`{name}` must have shape [N], got shape {arr.shape}.")
  if arr.size and not (np.issubdtype(arr.dtype, np.integer) or arr.dtype == np.bool_):
    raise TypeError(f"`{name}` must hold integers, got dtype {arr.dtype}.")
  arr = arr.astype(np.int64)
  if arr.size and arr.min() < 0:
    raise ValueError(f"`{name}` must be non-negative, got minimum {arr.min()}.")
  return arr


def _as_pair(labels: Any, predictions: Any) -> tuple[np.ndarray, np.ndarray]:
  labels = _as_labels(labels, "labels")
  predictions = _as_labels(predictions, "predictions")
  if labels.shape != predictions.shape:
    raise ValueError(f"`labels` and `predictions` must have the same length, got "
                     f"{labels.shape[0]} and {predictions.shape[0]}.")
  if labels.size == 0:
    raise ValueError("`labels` and `predictions` must not be empty.")
  return labels, predictions


# Largest dense array (entries) built from ids: 2 GiB of int64.
_MAX_DENSE = 2**28


def _check_dense(size: int, what: str, name: str) -> None:
  if size > _MAX_DENSE:
    raise ValueError(f"{what} would have {size} entries (more than {_MAX_DENSE}): `{name}` "
                     f"holds ids too large for a dense array indexed by id; relabel them to "
                     f"0..K-1 (np.unique(x, return_inverse=True)), or use the metrics, "
                     f"which do so themselves.")


def _compact_counts(labels: np.ndarray, predictions: np.ndarray
                    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
  """The contingency matrix over the ids that occur: ``(counts [K, L], class_ids [K],
  cluster_ids [L])`` with ``counts[i, k]`` the images of class ``class_ids[i]`` in cluster
  ``cluster_ids[k]``; O(N log N) time and O(N + K L) memory, whatever the ids' size."""
  class_ids, rows = np.unique(labels, return_inverse=True)
  cluster_ids, cols = np.unique(predictions, return_inverse=True)
  size = len(class_ids) * len(cluster_ids)
  if size > _MAX_DENSE:
    raise ValueError(f"`labels` and `predictions` have {len(class_ids)} and "
                     f"{len(cluster_ids)} distinct ids: their contingency matrix would have "
                     f"{size} entries (more than {_MAX_DENSE}).")
  counts = np.zeros((len(class_ids), len(cluster_ids)), dtype=np.int64)
  np.add.at(counts, (rows.reshape(-1), cols.reshape(-1)), 1)
  return counts, class_ids, cluster_ids


def _check_count(value: Any, name: str, needed: int) -> int:
  if value is None:
    return needed
  if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
    raise TypeError(f"`{name}` must be a Python int or None, got {value!r}.")
  if value < needed:
    raise ValueError(f"`{name}` must be at least {needed} (the largest index + 1), got "
                     f"{value}.")
  return int(value)


def contingency_matrix(
    labels: Any,
    predictions: Any,
    *,
    num_classes: int | None = None,
    num_clusters: int | None = None,
) -> np.ndarray:
  """Counts of each (class, cluster) pair.

  Args:
    labels: ``[N]`` ground-truth classes, non-negative ints.
    predictions: ``[N]`` cluster indices, non-negative ints.
    num_classes: rows; default ``max(labels) + 1``.
    num_clusters: columns; default ``max(predictions) + 1``.

  Returns:
    ``[num_classes, num_clusters]`` int64: entry ``[i, k]`` counts images of class ``i``
    put in cluster ``k``. Rows and columns are the ids themselves, so huge ids make a huge
    matrix: more than ``2**28`` entries raises ``ValueError`` (the metrics below relabel
    the ids first and never build this matrix).

  >>> contingency_matrix([0, 0, 1], [1, 1, 0]).tolist()
  [[0, 2], [1, 0]]
  """
  labels, predictions = _as_pair(labels, predictions)
  num_classes = _check_count(num_classes, "num_classes", int(labels.max()) + 1)
  num_clusters = _check_count(num_clusters, "num_clusters", int(predictions.max()) + 1)
  _check_dense(num_classes, "The contingency matrix", "labels")
  _check_dense(num_clusters, "The contingency matrix", "predictions")
  _check_dense(num_classes * num_clusters, "The contingency matrix", "predictions")
  counts = np.zeros((num_classes, num_clusters), dtype=np.int64)
  np.add.at(counts, (labels, predictions), 1)
  return counts


def hungarian_accuracy(
    labels: Any,
    predictions: Any,
    *,
    num_classes: int | None = None,
    num_clusters: int | None = None,
    return_mapping: bool = False,
) -> float | tuple[float, np.ndarray]:
  """Accuracy under the best one-to-one assignment of clusters to classes (Hungarian).

  Maximises the number of images whose cluster is assigned their class, over assignments
  where each class gets at most one cluster and each cluster at most one class
  (``scipy.optimize.linear_sum_assignment`` on the contingency matrix). With more clusters
  than classes the unassigned clusters' images count as wrong (use
  :func:`many_to_one_accuracy` for the majority-vote metric); with fewer, some classes are
  never predicted.

  Args:
    labels: ``[N]`` ground-truth classes, non-negative ints (NumPy or JAX).
    predictions: ``[N]`` cluster indices, non-negative ints.
    num_classes: default ``max(labels) + 1``.
    num_clusters: default ``max(predictions) + 1``.
    return_mapping: also return the assignment.

  Returns:
    The accuracy in ``[0, 1]`` as a Python float; with ``return_mapping``, also an int64
    ``[num_clusters]`` array giving each cluster's class, or -1 for unassigned clusters
    (and for cluster ids that do not occur). The assignment is computed over the ids that
    occur (relabelled to ``0..K-1``), so ``hungarian_accuracy([0, 1], [0, 10**9])`` costs
    a 2x2 matrix, not a dense 15 GiB one.

  >>> hungarian_accuracy([0, 0, 1, 1], [1, 1, 0, 0])
  1.0
  >>> hungarian_accuracy([0, 0, 1, 1], [2, 2, 0, 1], return_mapping=True)
  (0.75, array([ 1, -1,  0]))
  """
  labels, predictions = _as_pair(labels, predictions)
  num_classes = _check_count(num_classes, "num_classes", int(labels.max()) + 1)
  num_clusters = _check_count(num_clusters, "num_clusters", int(predictions.max()) + 1)
  counts, class_ids, cluster_ids = _compact_counts(labels, predictions)
  rows, cols = optimize.linear_sum_assignment(counts, maximize=True)
  accuracy = float(counts[rows, cols].sum() / counts.sum())
  if not return_mapping:
    return accuracy
  _check_dense(num_clusters, "The cluster -> class mapping", "predictions")
  mapping = np.full(num_clusters, -1, dtype=np.int64)
  mapping[cluster_ids[cols]] = class_ids[rows]
  return accuracy, mapping


def many_to_one_accuracy(
    labels: Any,
    predictions: Any,
    *,
    num_classes: int | None = None,
    num_clusters: int | None = None,
    return_mapping: bool = False,
) -> float | tuple[float, np.ndarray]:
  """Accuracy when every cluster predicts its majority class (not Hungarian matching).

  Several clusters may map to the same class, so this is at least
  :func:`hungarian_accuracy` and reaches 1 trivially with one cluster per image: only
  meaningful for a fixed, modest number of clusters (e.g. IIC's overclustering heads).
  Ties go to the smallest class index.

  Args:
    labels: ``[N]`` ground-truth classes, non-negative ints.
    predictions: ``[N]`` cluster indices, non-negative ints.
    num_classes: default ``max(labels) + 1``.
    num_clusters: default ``max(predictions) + 1``.
    return_mapping: also return each cluster's class (-1 for empty clusters).

  Returns:
    The accuracy as a Python float, and with ``return_mapping`` the ``[num_clusters]`` map.

  >>> many_to_one_accuracy([0, 0, 1, 1], [2, 2, 0, 1])
  1.0
  """
  labels, predictions = _as_pair(labels, predictions)
  num_classes = _check_count(num_classes, "num_classes", int(labels.max()) + 1)
  num_clusters = _check_count(num_clusters, "num_clusters", int(predictions.max()) + 1)
  counts, class_ids, cluster_ids = _compact_counts(labels, predictions)
  accuracy = float(counts.max(axis=0).sum() / counts.sum())
  if not return_mapping:
    return accuracy
  _check_dense(num_clusters, "The cluster -> class mapping", "predictions")
  mapping = np.full(num_clusters, -1, dtype=np.int64)
  # Class ids are sorted, so argmax's first maximum is the smallest class id.
  mapping[cluster_ids] = class_ids[counts.argmax(axis=0)]
  return accuracy, mapping


def _entropy(counts: np.ndarray) -> float:
  counts = counts[counts > 0].astype(np.float64)
  p = counts / counts.sum()
  return float(-np.sum(p * np.log(p)))


def normalized_mutual_info(labels: Any, predictions: Any) -> float:
  """Normalised mutual information ``I(U; V) / ((H(U) + H(V)) / 2)`` of two labellings.

  Natural logs; the arithmetic normalisation is scikit-learn's default. As there, two
  labellings that each put everything in one group score 1 (they agree), and if only one
  of them does, 0 (it carries no information).

  Args:
    labels: ``[N]`` ground-truth classes, non-negative ints.
    predictions: ``[N]`` cluster indices, non-negative ints.

  Returns:
    A Python float in ``[0, 1]``; 1 iff the labellings are equal up to renaming.

  >>> normalized_mutual_info([0, 0, 1, 1], [5, 5, 3, 3])
  1.0
  """
  counts = _compact_counts(*_as_pair(labels, predictions))[0].astype(np.float64)
  h_u, h_v = _entropy(counts.sum(axis=1)), _entropy(counts.sum(axis=0))
  if h_u == 0.0 and h_v == 0.0:
    return 1.0
  if h_u == 0.0 or h_v == 0.0:  # I(U; V) <= min(H(U), H(V)) = 0, without rounding noise
    return 0.0
  p = counts / counts.sum()
  p_u, p_v = p.sum(axis=1), p.sum(axis=0)
  nz = p > 0
  mi = float(np.sum(p[nz] * np.log(p[nz] / np.outer(p_u, p_v)[nz])))
  if mi <= 0.0:
    return 0.0
  return float(min(mi / ((h_u + h_v) / 2.0), 1.0))


def _pairs(counts: np.ndarray) -> int:
  """``sum C(n, 2)`` over the counts, exactly (Python ints)."""
  return sum(int(n) * (int(n) - 1) // 2 for n in counts.ravel() if n > 1)


def adjusted_rand_index(labels: Any, predictions: Any) -> float:
  """Adjusted Rand index (Hubert and Arabie 1985) of two labellings.

  ``ARI = (sum_ij C(n_ij, 2) - E) / ((sum_i C(a_i, 2) + sum_j C(b_j, 2)) / 2 - E)`` with
  ``E = sum_i C(a_i, 2) sum_j C(b_j, 2) / C(N, 2)``, where ``n_ij`` is the contingency
  matrix and ``a``, ``b`` its row and column sums. 1 for equal labellings up to renaming,
  about 0 for independent ones (it can be negative). When the denominator vanishes (both
  labellings trivial and equal, or ``N = 1``) the result is 1, as in scikit-learn.

  Args:
    labels: ``[N]`` ground-truth classes, non-negative ints.
    predictions: ``[N]`` cluster indices, non-negative ints.

  Returns:
    A Python float in ``[-1, 1]``.

  >>> adjusted_rand_index([0, 0, 1, 1], [1, 1, 0, 0])
  1.0
  """
  counts = _compact_counts(*_as_pair(labels, predictions))[0]
  n = int(counts.sum())
  index = _pairs(counts)
  rows, cols = _pairs(counts.sum(axis=1)), _pairs(counts.sum(axis=0))
  total = n * (n - 1) // 2
  if total == 0:
    return 1.0
  expected = rows * cols / total
  denominator = (rows + cols) / 2 - expected
  if denominator == 0:
    return 1.0
  return float((index - expected) / denominator)


def evaluate_heads(
    labels: Any,
    head_predictions: Any,
    head_losses: Any,
    *,
    num_classes: int | None = None,
) -> dict[str, Any]:
  """Clustering metrics for each of ``H`` sub-heads, and the head IIC reports.

  The IIC paper trains several sub-heads and reports the one with the lowest training loss
  (no labels used to pick it), next to the average over heads.

  Args:
    labels: ``[N]`` ground-truth classes, non-negative ints.
    head_predictions: ``[H, N]`` cluster indices of each sub-head.
    head_losses: ``[H]`` training losses of the sub-heads; NaN counts as the worst.
    num_classes: for :func:`hungarian_accuracy`; default ``max(labels) + 1``.

  Returns:
    A JSON-serialisable dict: ``"accuracy"``, ``"nmi"``, ``"ari"`` (lists of ``H`` floats,
    accuracy from :func:`hungarian_accuracy`), ``"lowest_loss_head"`` (int),
    ``"lowest_loss_accuracy"``, ``"best_head"`` (int, by accuracy),
    ``"best_head_accuracy"`` and ``"mean_accuracy"``.

  >>> out = evaluate_heads([0, 0, 1, 1], [[1, 1, 0, 0], [0, 1, 0, 1]], [-0.7, -0.1])
  >>> out["lowest_loss_head"], out["lowest_loss_accuracy"], out["mean_accuracy"]
  (0, 1.0, 0.75)
  """
  labels = _as_labels(labels, "labels")
  heads = np.asarray(head_predictions)
  if heads.ndim != 2 or heads.shape[0] == 0 or heads.shape[1] != labels.shape[0]:
    raise ValueError(f"`head_predictions` must have shape [H, N] with H > 0 and N = "
                     f"{labels.shape[0]}, got shape {heads.shape}.")
  losses = np.asarray(head_losses, dtype=np.float64)
  if losses.shape != (heads.shape[0],):
    raise ValueError(f"`head_losses` must have shape [H] = [{heads.shape[0]}], got shape "
                     f"{losses.shape}.")
  accuracy, nmi, ari = [], [], []
  for h in range(heads.shape[0]):
    predictions = _as_labels(heads[h], "head_predictions")
    accuracy.append(hungarian_accuracy(labels, predictions, num_classes=num_classes))
    nmi.append(normalized_mutual_info(labels, predictions))
    ari.append(adjusted_rand_index(labels, predictions))
  lowest = int(np.argmin(np.where(np.isnan(losses), math.inf, losses)))
  best = int(np.argmax(accuracy))
  return {
      "accuracy": accuracy,
      "nmi": nmi,
      "ari": ari,
      "lowest_loss_head": lowest,
      "lowest_loss_accuracy": accuracy[lowest],
      "best_head": best,
      "best_head_accuracy": accuracy[best],
      "mean_accuracy": float(np.mean(accuracy)),
  }
