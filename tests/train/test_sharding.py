"""Tests of ``jaxvision.train.sharding`` and of the data-parallel step on 8 devices."""

from __future__ import annotations

import json
import os

import jax
import numpy as np
import pytest

from jaxvision.train import batch_sharding, data_mesh, replicate, replicated_sharding, shard_batch
from tests.train.conftest import load_final, run_tiny, train_losses


def test_mesh_and_shardings():
  mesh = data_mesh()
  assert mesh.axis_names == ("data",)
  assert mesh.size == len(jax.devices())
  assert replicated_sharding(mesh).is_fully_replicated
  assert batch_sharding(mesh).spec == jax.sharding.PartitionSpec("data")
  with pytest.raises(ValueError, match="`devices`"):
    data_mesh([])


def test_shard_batch_keeps_values_and_shards_the_leading_axis():
  mesh = data_mesh()
  batch = {"x": np.arange(24, dtype=np.float32).reshape(4, 6), "y": np.arange(4)}
  out = shard_batch(batch, mesh)
  np.testing.assert_array_equal(out["x"], batch["x"])
  np.testing.assert_array_equal(out["y"], batch["y"])
  assert out["x"].sharding == batch_sharding(mesh)


def test_shard_batch_rejects_bad_batches():
  mesh = data_mesh()
  with pytest.raises(ValueError, match="leading"):
    shard_batch({"x": np.zeros((4, 2)), "y": np.zeros(3)}, mesh)
  with pytest.raises(ValueError, match="leading"):
    shard_batch({"x": np.float32(1.0)}, mesh)
  with pytest.raises(ValueError, match="at least one"):
    shard_batch({}, mesh)


def test_replicate():
  mesh = data_mesh()
  tree = {"a": np.ones((2, 3), np.float32), "b": [np.arange(3)]}
  out = replicate(tree, mesh)
  np.testing.assert_array_equal(out["b"][0], np.arange(3))
  assert out["a"].sharding.is_fully_replicated


@pytest.mark.slow
def test_training_on_8_devices_equals_one_device(tmp_path, compile_cache, reference_run):
  """24 train steps (BatchNorm, dropout, momentum) with every global batch split over 8
  simulated CPU devices match the same run on one device: every step's loss, the final params
  and batch stats, to 1e-5."""
  workdir = str(tmp_path)
  run_tiny(["train", workdir, "--checkpoint-every", "0"], compile_cache, num_devices=8,
           log_path=str(tmp_path / "log.txt"))
  with open(os.path.join(workdir, "results.json")) as f:
    assert json.load(f)["num_devices"] == 8
  losses = train_losses(workdir)
  assert [s for s, _ in losses] == list(range(1, 25))
  np.testing.assert_allclose([l for _, l in losses], [l for _, l in reference_run["losses"]],
                             rtol=1e-5, atol=1e-6)
  final = load_final(workdir)
  assert sorted(final) == sorted(reference_run["params"]) and len(final) == 8
  for name, expected in reference_run["params"].items():
    np.testing.assert_allclose(final[name], expected, rtol=1e-5, atol=1e-5, err_msg=name)
  # The run trained: the comparison is not of untouched initial values.
  assert losses[-1][1] < losses[0][1]
