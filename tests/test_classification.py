"""The classification path: spec, task, evaluator, Classifier save/load, shifts, and the
fine-tuning helpers (a frozen trunk stays bit-identical)."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from hypothesis import given, settings, strategies as st

from jaxvision import classification as cl
from jaxvision import finetune
from jaxvision.data import MnistSource
from jaxvision.train import TrainConfig, train_and_evaluate


def _blobs(n, seed=0, classes=3):
  """Class c = a bright square in corner c (learnable in a few steps)."""
  rng = np.random.default_rng(seed)
  labels = rng.integers(0, classes, n)
  images = rng.integers(0, 40, (n, 28, 28)).astype(np.uint8)
  for i, c in enumerate(labels):
    y, x = [(2, 2), (2, 16), (16, 2), (16, 16)][c]
    images[i, y:y + 10, x:x + 10] = 250
  return images, labels


def test_spec_validation_and_round_trip():
  spec = cl.ClassifierSpec(model="PlainNetTiny", num_classes=3)
  assert cl.ClassifierSpec.from_dict(spec.to_dict()) == spec
  with pytest.raises(ValueError, match="model"):
    cl.ClassifierSpec(model="NoSuchNet", num_classes=3)
  with pytest.raises(ValueError, match="num_classes"):
    cl.ClassifierSpec(model="PlainNetTiny", num_classes=1)
  with pytest.raises(ValueError, match="class_names"):
    cl.ClassifierSpec(model="PlainNetTiny", num_classes=3, class_names=("a",))
  with pytest.raises(ValueError, match="classifier"):
    cl.ClassifierSpec.from_dict({"kind": "detector"})


@settings(max_examples=20, deadline=None)
@given(st.integers(0, 3), st.integers(0, 2**31 - 1))
def test_random_shift_moves_content_by_at_most_max_shift(s, seed):
  img = np.zeros((4, 12, 12, 1), np.float32)
  img[:, 5:7, 5:7] = 1.0
  out = np.asarray(cl.random_shift(jnp.asarray(img), jax.random.key(seed), s))
  assert out.shape == img.shape
  for o in out:
    ys, xs = np.nonzero(o[..., 0])
    assert len(ys) == 4                      # all ink kept (the blob is >= 3 px from edges)
    assert abs(ys.min() - 5) <= s and abs(xs.min() - 5) <= s
  if s == 0:
    np.testing.assert_array_equal(out, img)


def test_evaluate_classifier_hand_case():
  class Fixed:
    spec = cl.ClassifierSpec(model="PlainNetTiny", num_classes=3)
    batch_size = 2

    def predict(self, images):
      preds = np.array([0, 1, 1, 2, 0])
      return preds, None
  ev = cl.evaluate_classifier(Fixed(), {"image": np.zeros((5, 28, 28, 1), np.uint8),
                                        "label": np.array([0, 1, 2, 2, 1])})
  assert ev["accuracy"] == pytest.approx(0.6)
  assert ev["confusion"] == [[1, 0, 0], [1, 1, 0], [0, 1, 1]]
  assert ev["per_class_accuracy"] == [1.0, 0.5, 0.5]


def test_task_trains_saves_and_loads(tmp_path):
  images, labels = _blobs(256)
  train = MnistSource.from_arrays(images, labels)
  test = MnistSource.from_arrays(*_blobs(64, seed=1))
  spec = cl.ClassifierSpec(model="PlainNetTiny", num_classes=3)
  task = cl.classification_task(spec, train, optimizer=optax.adam(1e-2), test_data=test)
  out = train_and_evaluate(TrainConfig(num_steps=40, batch_size=32, checkpoint_every=0,
                                       log_every=20), tmp_path / "w", task=task)
  assert out.results["eval"]["accuracy"] > 0.9
  clf = cl.Classifier(spec, {"params": out.state.params, "batch_stats": out.state.batch_stats})
  clf.save(tmp_path / "c.msgpack")
  again = cl.Classifier.load(tmp_path / "c.msgpack")
  a, sa = clf.predict(test.arrays["image"])
  b, sb = again.predict(test.arrays["image"][..., 0])      # [N, H, W] works too
  np.testing.assert_array_equal(a, b)
  np.testing.assert_allclose(sa, sb, rtol=1e-6)
  assert cl.forward_flops(clf) is None or cl.forward_flops(clf) > 0
  with pytest.raises(ValueError, match="images"):
    clf.predict(np.zeros((2, 32, 32, 1), np.uint8))


def test_frozen_trunk_is_bit_identical_and_head_moves(tmp_path):
  images, labels = _blobs(128)
  spec = cl.ClassifierSpec(model="PlainNetTiny", num_classes=3)
  params, stats = cl.init_classifier(spec, jax.random.key(0))
  initial = {"params": params, "batch_stats": stats}
  tx = finetune.frozen_trunk_optimizer(finetune.partition_params(params), optax.adam(1e-2))
  task = cl.classification_task(
      spec, MnistSource.from_arrays(images, labels), optimizer=tx, initial_variables=initial,
      loss=functools.partial(cl.cross_entropy_loss, update_batch_stats=False))
  out = train_and_evaluate(TrainConfig(num_steps=15, batch_size=32, checkpoint_every=0,
                                       log_every=15), tmp_path / "w", task=task)
  after = jax.device_get(out.state.params)
  for name in params:
    same = jax.tree.leaves(jax.tree.map(lambda a, b: np.array_equal(np.asarray(a),
                                                                   np.asarray(b)),
                                        params[name], after[name]))
    assert all(same) == (name != "classifier"), name
  for a, b in zip(jax.tree.leaves(stats), jax.tree.leaves(jax.device_get(out.state.batch_stats))):
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_finetune_helpers():
  spec5 = cl.ClassifierSpec(model="PlainNetTiny", num_classes=5)
  spec3 = cl.ClassifierSpec(model="PlainNetTiny", num_classes=3)
  p5, s5 = cl.init_classifier(spec5, jax.random.key(1))
  p3, s3 = cl.init_classifier(spec3, jax.random.key(2))
  out = finetune.transplant_trunk({"params": p5, "batch_stats": s5},
                                  {"params": p3, "batch_stats": s3})
  assert out["params"]["classifier"]["kernel"].shape[-1] == 3
  np.testing.assert_array_equal(out["params"]["stem"]["kernel"], p5["stem"]["kernel"])
  labels = finetune.partition_params(p3)
  assert set(jax.tree.leaves(labels)) == {"trunk", "head"}
  assert jax.tree.leaves(labels["classifier"]) == ["head", "head"]
  with pytest.raises(ValueError, match="head"):
    finetune.partition_params(p3, head=("nope",))
  idx = finetune.few_shot_subset(np.array([0, 1, 0, 1, 1, 0, 2]), 2, classes=[0, 1], seed=3)
  assert len(idx) == 4 and sorted(np.array([0, 1, 0, 1, 1, 0, 2])[idx].tolist()) == [0, 0, 1, 1]
  with pytest.raises(ValueError, match="fewer"):
    finetune.few_shot_subset(np.array([0, 1]), 2)
  # Discriminative learning rates: the trunk moves less than the head.
  g = jax.tree.map(jnp.ones_like, p3)
  tx = finetune.discriminative_optimizer(labels, head=optax.sgd(1.0), trunk=optax.sgd(0.1))
  upd, _ = tx.update(g, tx.init(p3), p3)
  assert float(upd["classifier"]["bias"][0]) == -1.0
  assert float(upd["stem"]["kernel"].ravel()[0]) == pytest.approx(-0.1)
