"""jaxvision.sequence: the spec's checks and round trip, batched prediction equal to one
call, grouped evaluation by hand, input errors."""

from __future__ import annotations

import jax
import numpy as np
import pytest

from jaxvision import sequence

SPEC = sequence.InputsSpec(model="BagOfWordsTiny", num_classes=3,
                           inputs={"tokens": ((5,), "int32")},
                           attributes={"vocab_size": 11}, metadata={"kind_names": ["a", "b"]})


def _clf(batch_size):
  v = jax.jit(SPEC.build().init)(jax.random.key(0), np.ones((1, 5), np.int32))
  return sequence.InputsClassifier(SPEC, v, batch_size=batch_size)


def test_spec_checks_and_round_trip():
  assert sequence.InputsSpec.from_dict(SPEC.to_dict()) == SPEC
  bad = [dict(model="Nope"), dict(num_classes=1), dict(inputs={}),
         dict(inputs={"tokens": ((5,), "int64")}), dict(class_names=("x",))]
  for kw in bad:
    args = dict(model="BagOfWordsTiny", num_classes=3, inputs={"tokens": ((5,), "int32")})
    args.update(kw)
    with pytest.raises(ValueError):
      sequence.InputsSpec(**args)
  with pytest.raises(ValueError, match="inputs_classifier"):
    sequence.InputsSpec.from_dict({"kind": "classifier"})


def test_batched_prediction_equals_one_call_and_errors():
  tokens = np.random.default_rng(0).integers(0, 11, (23, 5)).astype(np.int32)
  a = _clf(4).scores({"tokens": tokens})
  b = _clf(64).scores({"tokens": tokens})
  np.testing.assert_allclose(a, b, atol=1e-5)
  assert _clf(4).scores({"tokens": tokens[:0]}).shape == (0, 3)
  with pytest.raises(ValueError, match="tokens"):
    _clf(4).scores({"tokens": tokens[:, :3]})
  with pytest.raises(ValueError, match="missing input"):
    _clf(4).scores({"words": tokens})
  with pytest.raises(TypeError, match="integer"):
    _clf(4).scores({"tokens": tokens.astype(np.float32)})
  with pytest.raises(TypeError, match="mapping"):
    _clf(4).scores(tokens)


def test_grouped_evaluation_by_hand():
  clf = _clf(8)
  tokens = np.random.default_rng(1).integers(0, 11, (10, 5)).astype(np.int32)
  preds, _ = clf.predict({"tokens": tokens})
  labels = preds.copy()
  labels[[0, 1, 5]] = (labels[[0, 1, 5]] + 1) % 3       # three wrong
  kind = np.array([0, 0, 0, 0, 1, 1, 1, 1, 1, 1])
  ev = sequence.evaluate_inputs_classifier(clf, {"tokens": tokens, "label": labels,
                                                 "kind": kind}, group="kind")
  assert ev["accuracy"] == pytest.approx(0.7)
  assert ev["group_accuracy"] == {"a": pytest.approx(0.5), "b": pytest.approx(5 / 6)}
  with pytest.raises(ValueError, match="no field"):
    sequence.evaluate_inputs_classifier(clf, {"tokens": tokens, "label": labels}, group="kind")
