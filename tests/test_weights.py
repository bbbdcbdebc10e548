"""Self-describing weight files (jaxvision.weights)."""

from __future__ import annotations

import json

import jax
import numpy as np
import pytest
from flax import serialization

from jaxvision import weights


def _variables():
  rng = np.random.default_rng(0)
  return {"params": {"conv": {"kernel": rng.normal(size=(3, 3, 2, 4)).astype(np.float32),
                              "bias": np.zeros(4, np.float32)}},
          "batch_stats": {"bn": {"mean": np.arange(4, dtype=np.float32)}}}


def test_round_trip_keeps_arrays_and_spec(tmp_path):
  spec = {"kind": "detector", "model": "SSDTiny", "image_size": [48, 64],
          "class_names": ["background", "a"], "training": {"steps": 3, "lr": 1e-3}}
  path = weights.save_weights(tmp_path / "w.msgpack", _variables(), spec)
  variables, got = weights.load_weights(path)
  assert got == spec
  jax.tree.map(np.testing.assert_array_equal, variables, _variables())
  # A directory means the weights.msgpack inside it.
  weights.save_weights(tmp_path, _variables(), spec)
  assert (tmp_path / weights.WEIGHTS_FILE).is_file()
  assert weights.load_weights(tmp_path)[1] == spec


def test_errors_name_the_file(tmp_path):
  with pytest.raises(FileNotFoundError, match="nope.msgpack"):
    weights.load_weights(tmp_path / "nope.msgpack")
  with pytest.raises(FileNotFoundError, match="weights.msgpack"):
    weights.load_weights(tmp_path)  # a directory without weights
  bad = tmp_path / "bad.msgpack"
  bad.write_bytes(b"\x00\x01garbage")
  with pytest.raises(ValueError, match="bad.msgpack"):
    weights.load_weights(bad)
  legacy = tmp_path / "legacy.msgpack"
  legacy.write_bytes(serialization.to_bytes(_variables()))
  with pytest.raises(ValueError, match="without a model description"):
    weights.load_weights(legacy)
  with pytest.raises(TypeError, match="JSON"):
    weights.save_weights(tmp_path / "x.msgpack", _variables(), {"f": object()})
  with pytest.raises(TypeError, match="spec"):
    weights.save_weights(tmp_path / "x.msgpack", _variables(), ["not", "a", "dict"])


def test_newer_version_is_refused(tmp_path):
  data = serialization.msgpack_serialize({"format": weights.FORMAT, "version": 99,
                                          "spec": json.dumps({}), "variables": {}})
  (tmp_path / "new.msgpack").write_bytes(data)
  with pytest.raises(ValueError, match="version 99"):
    weights.load_weights(tmp_path / "new.msgpack")


def test_check_variables_names_what_differs():
  expected = jax.tree.map(lambda a: jax.ShapeDtypeStruct(a.shape, a.dtype), _variables())
  out = weights.check_variables(_variables(), expected, source="f", model="M")
  assert out["params"]["conv"]["kernel"].dtype == np.float32
  wrong = _variables()
  wrong["params"]["conv"]["kernel"] = np.zeros((3, 3, 2, 5), np.float32)
  del wrong["batch_stats"]["bn"]["mean"]
  wrong["params"]["extra"] = np.zeros(2)
  with pytest.raises(ValueError) as e:
    weights.check_variables(wrong, expected, source="'w.msgpack'", model="SSDTiny")
  msg = str(e.value)
  assert "'w.msgpack'" in msg and "SSDTiny" in msg
  assert "batch_stats/bn/mean" in msg and "params/extra" in msg
  assert "params/conv/kernel (3, 3, 2, 5) vs (3, 3, 2, 4)" in msg
