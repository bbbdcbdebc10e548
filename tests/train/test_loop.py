"""Tests of ``jaxvision.train.loop``: logging, results, checkpoint retention and resumption,
and the kill-and-resume guarantee (SIGKILL mid-epoch and during a checkpoint write)."""

from __future__ import annotations

import glob
import json
import os

import jax
import numpy as np
import optax
import pytest

from jaxvision.train import Checkpointer, Task, TrainConfig, train_and_evaluate
from tests.train import _tiny
from tests.train.conftest import (kill_when, load_final, read_jsonl, run_tiny, spawn_tiny,
                                  train_losses)


def _config(**kw):
  base = dict(num_steps=6, batch_size=8, seed=1, checkpoint_every=2, keep_checkpoints=2,
              log_every=2, eval_every=3, progress=False)
  base.update(kw)
  return TrainConfig(**base)


def _assert_states_equal(a, b):
  jax.tree.map(np.testing.assert_array_equal, jax.device_get(a.params), jax.device_get(b.params))
  jax.tree.map(np.testing.assert_array_equal, jax.device_get(a.batch_stats),
               jax.device_get(b.batch_stats))


@pytest.fixture(scope="module")
def task():
  return _tiny.make_task()


def test_logs_results_retention_and_resume(tmp_path, task, capsys):
  """One workdir: 6 steps, then the same run extended to 10 steps (resumes from step 6), next
  to a straight 10-step run logging every step."""
  workdir = str(tmp_path / "run")
  out = train_and_evaluate(_config(), workdir, task=task)

  records = read_jsonl(workdir)
  assert [(r["split"], r["step"]) for r in records] == [
      ("train", 2), ("eval", 3), ("train", 4), ("train", 6), ("eval", 6)]
  for r in records:
    if r["split"] == "train":
      assert set(r) == {"step", "split", "loss", "metrics", "steps_per_sec"}
      assert set(r["metrics"]) == {"accuracy"} and r["steps_per_sec"] > 0
      assert np.isfinite(r["loss"])
    else:
      assert set(r) == {"step", "split", "metrics"} and 0 <= r["metrics"]["accuracy"] <= 1
  printed = capsys.readouterr().out
  assert "[train] step 6: loss" in printed and "[eval] step 3: accuracy" in printed

  with open(os.path.join(workdir, "results.json")) as f:
    results = json.load(f)
  assert results == json.loads(json.dumps(out.results))
  assert results["final_step"] == 6 and results["resumed_from_step"] is None
  assert results["config"]["num_steps"] == 6 and results["num_devices"] == len(jax.devices())
  assert results["train"]["loss"] == records[3]["loss"]
  assert results["eval"] == records[4]["metrics"]
  assert int(out.state.step) == 6

  ckpt_dir = os.path.join(workdir, "checkpoints")
  with Checkpointer(ckpt_dir, save_every=2, keep=2) as ckpt:
    assert ckpt.all_steps() == [4, 6]  # steps 2, 4, 6 saved; the last 2 kept

  resumed = train_and_evaluate(_config(num_steps=10), workdir, task=task)
  assert resumed.results["resumed_from_step"] == 6 and resumed.results["final_step"] == 10
  with Checkpointer(ckpt_dir, save_every=2, keep=2) as ckpt:
    assert ckpt.all_steps() == [8, 10]
  assert [(r["split"], r["step"]) for r in read_jsonl(workdir)] == [
      ("train", 2), ("eval", 3), ("train", 4), ("train", 6), ("eval", 6), ("train", 8),
      ("eval", 9), ("train", 10), ("eval", 10)]

  straight_dir = str(tmp_path / "straight")
  straight = train_and_evaluate(_config(num_steps=10, log_every=1, checkpoint_every=0),
                                straight_dir, task=task)
  _assert_states_equal(resumed.state, straight.state)
  assert not os.path.exists(os.path.join(straight_dir, "checkpoints"))
  # Logged train losses are means over each log_every window.
  per_step = dict(train_losses(straight_dir))
  for step, loss in train_losses(workdir):
    np.testing.assert_allclose(loss, (per_step[step - 1] + per_step[step]) / 2, rtol=1e-6)


def test_resume_at_the_end_trains_no_more(tmp_path, task):
  workdir = str(tmp_path)
  first = train_and_evaluate(_config(num_steps=4, eval_every=0), workdir, task=task)
  again = train_and_evaluate(_config(num_steps=4, eval_every=0), workdir, task=task)
  assert again.results["resumed_from_step"] == 4 and again.results["final_step"] == 4
  _assert_states_equal(first.state, again.state)
  assert again.results["eval"] == first.results["eval"]
  assert [(r["split"], r["step"]) for r in read_jsonl(workdir)] == [
      ("train", 2), ("train", 4), ("eval", 4)]


def test_config_and_task_validation(task):
  with pytest.raises(ValueError, match="`num_steps`"):
    TrainConfig(num_steps=0, batch_size=8)
  with pytest.raises(TypeError, match="`batch_size`"):
    TrainConfig(num_steps=1, batch_size=8.0)
  with pytest.raises(ValueError, match="`checkpoint_every`"):
    TrainConfig(num_steps=1, batch_size=8, checkpoint_every=-1)
  with pytest.raises(TypeError, match="`progress`"):
    TrainConfig(num_steps=1, batch_size=8, progress="yes")
  with pytest.raises(TypeError, match="`loss_fn`"):
    Task(init=task.init, loss_fn=None, optimizer=optax.sgd(0.1), train_iter=task.train_iter)
  with pytest.raises(TypeError, match="`optimizer`"):
    Task(init=task.init, loss_fn=task.loss_fn, optimizer="sgd", train_iter=task.train_iter)
  with pytest.raises(TypeError, match="`task`"):
    train_and_evaluate(_config(), "unused", task=None)


def test_wrong_batch_size_from_train_iter(tmp_path, task):
  bad = Task(init=task.init, loss_fn=task.loss_fn, optimizer=task.optimizer,
             train_iter=lambda seed, batch_size: task.train_iter(seed, batch_size // 2))
  with pytest.raises(ValueError, match="batches of 8 rows"):
    train_and_evaluate(_config(checkpoint_every=0), str(tmp_path), task=bad)


@pytest.mark.slow
def test_sigkill_mid_epoch_resumes_exactly(tmp_path, compile_cache, reference_run):
  """A run SIGKILLed in the middle of its second epoch (8 batches per epoch) restarts from its
  last committed checkpoint and ends with exactly the reference run's parameters."""
  workdir = str(tmp_path)
  log = str(tmp_path / "killed.txt")
  proc = spawn_tiny(["train", workdir, "--step-sleep", "0.15"], compile_cache, log_path=log)
  kill_when(proc, lambda: any(s >= 10 for s, _ in _safe_losses(workdir)), log_path=log)
  reached = max(s for s, _ in _safe_losses(workdir))
  # Killed mid-epoch (normally at step 10 or 11 of epoch 2, steps 9-16), before the end.
  assert 10 <= reached < 24 and reached % 8, reached
  assert not os.path.exists(os.path.join(workdir, "final_p0.npz"))
  with Checkpointer(os.path.join(workdir, "checkpoints"), save_every=4, keep=3) as ckpt:
    committed = ckpt.latest_step()
  assert committed is not None and committed % 4 == 0 and 4 <= committed <= reached

  run_tiny(["train", workdir], compile_cache, log_path=str(tmp_path / "resumed.txt"))
  with open(os.path.join(workdir, "results.json")) as f:
    assert json.load(f)["resumed_from_step"] == committed
  _assert_arrays_equal(load_final(workdir), reference_run["params"])
  assert train_losses(workdir) == reference_run["losses"]  # every step's loss, bit for bit


@pytest.mark.slow
def test_sigkill_during_checkpoint_write_resumes_exactly(tmp_path, compile_cache,
                                                         reference_run):
  """A run SIGKILLed while writing its step-12 checkpoint leaves step 8 as the latest committed
  step, and resuming from it ends with exactly the reference run's parameters."""
  workdir = str(tmp_path)
  log = str(tmp_path / "killed.txt")
  proc = spawn_tiny(["train", workdir, "--slow-save-step", "12"], compile_cache, log_path=log)
  kill_when(proc, lambda: os.path.exists(os.path.join(workdir, "saving_12")), log_path=log)
  ckpt_dir = os.path.join(workdir, "checkpoints")
  assert glob.glob(os.path.join(ckpt_dir, "12.orbax-checkpoint-tmp*"))  # died mid-write
  with Checkpointer(ckpt_dir, save_every=4, keep=3) as ckpt:
    assert ckpt.latest_step() == 8
    assert ckpt.all_steps() == [4, 8]

  run_tiny(["train", workdir], compile_cache, log_path=str(tmp_path / "resumed.txt"))
  assert sorted(os.listdir(ckpt_dir)) == ["16", "20", "24"]  # no leftover tmp directory
  with open(os.path.join(workdir, "results.json")) as f:
    assert json.load(f)["resumed_from_step"] == 8
  _assert_arrays_equal(load_final(workdir), reference_run["params"])
  assert train_losses(workdir) == reference_run["losses"]


def _safe_losses(workdir):
  try:
    return train_losses(workdir)
  except json.JSONDecodeError:  # a line being written
    return []


def _assert_arrays_equal(actual, expected):
  assert sorted(actual) == sorted(expected)
  for name in expected:
    np.testing.assert_array_equal(actual[name], expected[name], err_msg=name)
