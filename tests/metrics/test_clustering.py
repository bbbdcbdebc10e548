"""Tests of the clustering metrics (``jaxvision.metrics.clustering``) and the confusion PNG.

Oracles: hand-computed contingency tables (worked out in the comments), brute force over all
one-to-one assignments for the Hungarian accuracy, direct pair counting for the ARI, the
definitions of entropy and mutual information for the NMI, and, only where scikit-learn
happens to be installed, its implementations (an extra check, not relied on).
"""

from __future__ import annotations

import itertools
import math

import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from jaxvision import metrics
from jaxvision.metrics.clustering import adjusted_rand_index, contingency_matrix
from jaxvision.metrics.clustering import evaluate_heads, hungarian_accuracy
from jaxvision.metrics.clustering import many_to_one_accuracy, normalized_mutual_info
from jaxvision.viz import save_confusion_matrix


def _brute_force_accuracy(labels, predictions):
  """Best one-to-one cluster -> class assignment, by trying all of them."""
  counts = np.zeros((labels.max() + 1, predictions.max() + 1), np.int64)
  np.add.at(counts, (labels, predictions), 1)
  n_classes, n_clusters = counts.shape
  best = 0
  if n_clusters <= n_classes:
    for classes in itertools.permutations(range(n_classes), n_clusters):
      best = max(best, sum(counts[c, k] for k, c in enumerate(classes)))
  else:
    for clusters in itertools.permutations(range(n_clusters), n_classes):
      best = max(best, sum(counts[c, k] for c, k in enumerate(clusters)))
  return best / labels.size


def _pair_counting_ari(labels, predictions):
  """ARI from its definition over all pairs of items: (index - expected) / (max - expected)."""
  same_u, same_v = [], []
  for a, b in itertools.combinations(range(labels.size), 2):
    same_u.append(labels[a] == labels[b])
    same_v.append(predictions[a] == predictions[b])
  same_u, same_v = np.array(same_u, bool), np.array(same_v, bool)
  pairs = same_u.size
  if pairs == 0:  # a single item: no pairs, and the convention (as sklearn) is 1
    return 1.0
  index = np.sum(same_u & same_v)
  expected = same_u.sum() * same_v.sum() / pairs
  maximum = (same_u.sum() + same_v.sum()) / 2
  return 1.0 if maximum == expected else (index - expected) / (maximum - expected)


def test_exported():
  assert metrics.hungarian_accuracy is hungarian_accuracy
  assert metrics.evaluate_heads is evaluate_heads


def test_contingency_matrix():
  cm = contingency_matrix(jnp.array([0, 0, 1, 2, 2, 2]), np.array([1, 1, 0, 0, 0, 3]))
  assert cm.dtype == np.int64
  np.testing.assert_array_equal(cm, [[0, 2, 0, 0], [1, 0, 0, 0], [2, 0, 0, 1]])
  cm = contingency_matrix([0, 1], [0, 0], num_classes=3, num_clusters=2)
  np.testing.assert_array_equal(cm, [[1, 0], [1, 0], [0, 0]])


def test_permuted_labels_score_one():
  rng = np.random.default_rng(0)
  labels = rng.integers(0, 10, size=500)
  renamed = rng.permutation(10)[labels] + 3  # cluster names are arbitrary, even with gaps
  accuracy, mapping = hungarian_accuracy(labels, renamed, return_mapping=True)
  assert accuracy == 1.0
  np.testing.assert_array_equal(mapping[renamed], labels)
  assert np.all(mapping[:3] == -1)  # empty clusters 0..2 get no class
  assert normalized_mutual_info(labels, renamed) == pytest.approx(1.0, abs=1e-12)
  assert adjusted_rand_index(labels, renamed) == pytest.approx(1.0, abs=1e-12)
  assert many_to_one_accuracy(labels, renamed) == 1.0


def test_hand_contingency_case():
  # labels [0,0,0,1,1,1], clusters [0,0,1,1,2,2]: contingency [[2, 1, 0], [0, 1, 2]].
  labels = np.array([0, 0, 0, 1, 1, 1])
  predictions = np.array([0, 0, 1, 1, 2, 2])
  # Hungarian: cluster 0 -> class 0 (2 right), cluster 2 -> class 1 (2 right), cluster 1 is
  # left over: 4/6. Majority vote also keeps one of cluster 1's images: 5/6.
  accuracy, mapping = hungarian_accuracy(labels, predictions, return_mapping=True)
  assert accuracy == pytest.approx(4 / 6)
  np.testing.assert_array_equal(mapping, [0, -1, 1])
  assert many_to_one_accuracy(labels, predictions) == pytest.approx(5 / 6)
  # NMI: p(class) = 1/2 each, p(cluster) = 1/3 each. The cells 2/6 contribute
  # (1/3) ln((1/3) / (1/6)) = (1/3) ln 2 each, the cells 1/6 contribute ln 1 = 0, so
  # I = (2/3) ln 2; H(U) = ln 2, H(V) = ln 3; NMI = (2/3) ln 2 / ((ln 2 + ln 3) / 2)
  # = (4/3) ln 2 / ln 6 = 0.51580...
  assert normalized_mutual_info(labels, predictions) == pytest.approx(
      4 / 3 * math.log(2) / math.log(6), rel=1e-12)
  # ARI: sum C(n_ij, 2) = 1 + 0 + 0 + 1 = 2; rows C(3,2) * 2 = 6; columns C(2,2) * 3 = 3;
  # C(6, 2) = 15; expected = 6 * 3 / 15 = 1.2; max = (6 + 3) / 2 = 4.5;
  # ARI = (2 - 1.2) / (4.5 - 1.2) = 8/33.
  assert adjusted_rand_index(labels, predictions) == pytest.approx(8 / 33, rel=1e-12)
  assert _pair_counting_ari(labels, predictions) == pytest.approx(8 / 33, rel=1e-12)


def test_overclustering_is_one_to_one():
  # 50 clusters over 10 classes, every cluster pure: majority vote is perfect, Hungarian can
  # use only 10 clusters (one per class) and counts the other 40 clusters' images as wrong.
  rng = np.random.default_rng(1)
  predictions = rng.integers(0, 50, size=2000)
  labels = predictions % 10
  best = np.bincount(predictions, minlength=50).reshape(5, 10).max(axis=0).sum()
  accuracy, mapping = hungarian_accuracy(labels, predictions, num_classes=10,
                                         return_mapping=True)
  assert accuracy == pytest.approx(best / 2000)
  assert accuracy < 0.35
  assert np.sum(mapping >= 0) == 10 and sorted(mapping[mapping >= 0]) == list(range(10))
  assert many_to_one_accuracy(labels, predictions) == 1.0
  # Fewer clusters than classes: at most as many classes as clusters can be right.
  assert hungarian_accuracy(labels, labels % 2) == pytest.approx(
      _brute_force_accuracy(labels, labels % 2))


def test_independent_labellings():
  rng = np.random.default_rng(2)
  labels, predictions = rng.integers(0, 10, size=5000), rng.integers(0, 10, size=5000)
  assert abs(adjusted_rand_index(labels, predictions)) < 0.01
  assert normalized_mutual_info(labels, predictions) < 0.01
  assert hungarian_accuracy(labels, predictions) < 0.15


def test_degenerate_labellings():
  ones = np.zeros(6, np.int64)
  spread = np.arange(6)
  assert normalized_mutual_info(ones, ones) == 1.0  # both trivial: they agree
  assert normalized_mutual_info(ones, spread) == 0.0
  assert adjusted_rand_index(ones, ones) == 1.0
  assert adjusted_rand_index(spread, spread) == 1.0
  assert adjusted_rand_index(ones, spread) == 0.0
  assert adjusted_rand_index([3], [0]) == 1.0
  assert hungarian_accuracy(ones, spread) == pytest.approx(1 / 6)


@settings(max_examples=25, deadline=None)
@given(data=st.data(), n=st.integers(1, 14), k=st.integers(1, 5), c=st.integers(1, 5))
def test_against_brute_force(data, n, k, c):
  labels = np.array(data.draw(st.lists(st.integers(0, c - 1), min_size=n, max_size=n)))
  predictions = np.array(data.draw(st.lists(st.integers(0, k - 1), min_size=n, max_size=n)))
  accuracy = hungarian_accuracy(labels, predictions)
  assert accuracy == pytest.approx(_brute_force_accuracy(labels, predictions))
  assert accuracy <= many_to_one_accuracy(labels, predictions) + 1e-12
  ari = adjusted_rand_index(labels, predictions)
  assert ari == pytest.approx(_pair_counting_ari(labels, predictions), abs=1e-12)
  nmi = normalized_mutual_info(labels, predictions)
  assert 0.0 <= nmi <= 1.0
  # Symmetric in the two labellings, invariant to renaming either.
  assert adjusted_rand_index(predictions, labels) == pytest.approx(ari, abs=1e-12)
  assert normalized_mutual_info(predictions, labels) == pytest.approx(nmi, abs=1e-12)
  renamed = np.random.default_rng(n).permutation(k)[predictions]
  assert hungarian_accuracy(labels, renamed) == pytest.approx(accuracy)
  assert normalized_mutual_info(labels, renamed) == pytest.approx(nmi, abs=1e-12)


def test_matches_sklearn_if_installed():
  sk = pytest.importorskip("sklearn.metrics")  # optional extra check; not counted
  rng = np.random.default_rng(3)
  labels, predictions = rng.integers(0, 6, 300), (rng.integers(0, 6, 300) + 0) % 8
  predictions[:150] = labels[:150]
  assert normalized_mutual_info(labels, predictions) == pytest.approx(
      sk.normalized_mutual_info_score(labels, predictions))
  assert adjusted_rand_index(labels, predictions) == pytest.approx(
      sk.adjusted_rand_score(labels, predictions))


def test_evaluate_heads():
  rng = np.random.default_rng(4)
  labels = rng.integers(0, 4, size=200)
  perfect = (labels + 1) % 4
  noisy = labels.copy()
  noisy[:50] = rng.integers(0, 4, size=50)
  random = rng.integers(0, 4, size=200)
  heads = jnp.asarray(np.stack([random, noisy, perfect]))
  out = evaluate_heads(labels, heads, jnp.array([-0.5, -1.2, -1.0]))
  want_acc = [hungarian_accuracy(labels, p) for p in (random, noisy, perfect)]
  assert out["accuracy"] == pytest.approx(want_acc)
  assert out["nmi"] == pytest.approx([normalized_mutual_info(labels, p)
                                      for p in (random, noisy, perfect)])
  assert out["ari"] == pytest.approx([adjusted_rand_index(labels, p)
                                      for p in (random, noisy, perfect)])
  assert out["lowest_loss_head"] == 1  # picked by loss, not by accuracy
  assert out["lowest_loss_accuracy"] == pytest.approx(want_acc[1])
  assert out["best_head"] == 2 and out["best_head_accuracy"] == 1.0
  assert out["mean_accuracy"] == pytest.approx(np.mean(want_acc))
  assert all(isinstance(v, float) for v in out["accuracy"])
  # NaN losses count as the worst.
  assert evaluate_heads(labels, heads, [math.nan, 0.3, 0.2])["lowest_loss_head"] == 2


def test_bad_arguments():
  with pytest.raises(ValueError, match="same length"):
    hungarian_accuracy([0, 1], [0])
  with pytest.raises(ValueError, match="empty"):
    normalized_mutual_info([], [])
  with pytest.raises(ValueError, match="labels"):
    adjusted_rand_index([[0, 1]], [[0, 1]])
  with pytest.raises(ValueError, match="predictions"):
    contingency_matrix([0, 1], [0, -1])
  with pytest.raises(TypeError, match="labels"):
    hungarian_accuracy([0.0, 1.0], [0, 1])
  with pytest.raises(ValueError, match="num_classes"):
    hungarian_accuracy([0, 3], [0, 1], num_classes=3)
  with pytest.raises(ValueError, match="head_predictions"):
    evaluate_heads([0, 1], [[0, 1, 1]], [0.0])
  with pytest.raises(ValueError, match="head_losses"):
    evaluate_heads([0, 1], [[0, 1]], [0.0, 1.0])


def test_save_confusion_matrix_writes_png(tmp_path):
  labels = np.array([0, 0, 1, 1, 2, 2, 2])
  cm = contingency_matrix(labels, np.array([1, 1, 0, 0, 2, 2, 1]))
  path = tmp_path / "cm.png"
  save_confusion_matrix(cm, path, title="clusters", class_names=["a", "b", "c"])
  data = path.read_bytes()
  assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 1000
  wide = tmp_path / "wide.png"  # overclustering: 3 classes x 12 clusters, float entries
  save_confusion_matrix(np.random.default_rng(0).random((3, 12)), str(wide))
  assert wide.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
  with pytest.raises(ValueError, match="class_names"):
    save_confusion_matrix(cm, tmp_path / "x.png", class_names=["a"])
  with pytest.raises(ValueError, match="`cm`"):
    save_confusion_matrix(-cm, tmp_path / "x.png")


# ---------------------------------------------------------------------------------------------
# Issue 13: cluster ids are arbitrary names, however large.


def test_metrics_relabel_huge_ids_instead_of_allocating_by_id():
  labels, predictions = [0, 1, 1, 0, 2], [0, 10**9, 10**9, 0, 7]
  assert hungarian_accuracy([0, 1], [0, 10**9]) == 1.0  # was a dense 15 GiB matrix
  assert hungarian_accuracy(labels, predictions) == 1.0
  assert many_to_one_accuracy(labels, predictions) == 1.0
  assert normalized_mutual_info(labels, predictions) == pytest.approx(1.0)
  assert adjusted_rand_index(labels, predictions) == 1.0
  # Same values as with the ids renamed to 0..K-1.
  rng = np.random.default_rng(0)
  y, k = rng.integers(0, 4, 200), rng.integers(0, 6, 200)
  names = np.array([3, 10**12, 17, 2**40, 0, 999_999_937])
  for fn in (hungarian_accuracy, many_to_one_accuracy, normalized_mutual_info,
             adjusted_rand_index):
    assert fn(y * 10**10, names[k]) == pytest.approx(fn(y, k), abs=1e-12), fn.__name__
  head = evaluate_heads(y, np.stack([names[k], k]), [0.0, 1.0])
  assert head["accuracy"][0] == head["accuracy"][1]


def test_mappings_with_sparse_ids():
  acc, mapping = hungarian_accuracy([0, 0, 1, 1], [5, 5, 2, 2], return_mapping=True)
  assert acc == 1.0 and mapping.tolist() == [-1, -1, 1, -1, -1, 0]
  acc, mapping = many_to_one_accuracy([0, 0, 1, 1, 1], [5, 5, 2, 2, 5], return_mapping=True)
  assert acc == 0.8 and mapping.tolist() == [-1, -1, 1, -1, -1, 0]
  # The mappings are indexed by cluster id: refused, not allocated, for huge ids.
  for fn in (hungarian_accuracy, many_to_one_accuracy):
    assert fn([0, 1], [0, 10**9]) == 1.0
    with pytest.raises(ValueError, match="mapping.*`predictions`"):
      fn([0, 1], [0, 10**9], return_mapping=True)
  with pytest.raises(ValueError, match="contingency matrix.*`predictions`.*relabel"):
    contingency_matrix([0, 1], [0, 10**9])
