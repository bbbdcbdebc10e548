"""A real two-process run (``jax.distributed`` on 127.0.0.1, gloo CPU collectives), each
process with 2 CPU devices and half of every global batch, matches the single-process run."""

from __future__ import annotations

import os
import socket
import subprocess

import numpy as np
import pytest

from tests.train.conftest import load_final, read_tail, spawn_tiny, train_losses


def _free_port() -> int:
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


@pytest.mark.slow
def test_two_processes_match_one(tmp_path, compile_cache, reference_run):
  workdir = str(tmp_path)
  coordinator = f"127.0.0.1:{_free_port()}"
  logs = [str(tmp_path / f"p{i}.txt") for i in range(2)]
  procs = [spawn_tiny(["train", workdir, "--coordinator", coordinator, "--num-processes", "2",
                       "--process-id", str(i)], compile_cache, num_devices=2,
                      log_path=logs[i]) for i in range(2)]
  try:
    codes = [p.wait(timeout=240) for p in procs]
  except subprocess.TimeoutExpired:
    codes = None
  finally:
    for p in procs:
      if p.poll() is None:
        p.kill()
        p.wait()
  assert codes == [0, 0], "\n".join(read_tail(log) for log in logs)

  # Process 0 logged every step: same losses as one process on the same global batches.
  losses = train_losses(workdir)
  assert [s for s, _ in losses] == [s for s, _ in reference_run["losses"]]
  np.testing.assert_allclose([l for _, l in losses], [l for _, l in reference_run["losses"]],
                             rtol=1e-5, atol=1e-6)
  p0, p1 = load_final(workdir, 0), load_final(workdir, 1)
  assert sorted(p0) == sorted(reference_run["params"])
  for name, expected in reference_run["params"].items():
    np.testing.assert_array_equal(p0[name], p1[name], err_msg=name)  # replicated
    np.testing.assert_allclose(p0[name], expected, rtol=1e-5, atol=1e-5, err_msg=name)
  # Both processes checkpointed their own iterator position next to the shared state.
  data_dir = os.path.join(workdir, "checkpoints", "24", "data_iter")
  assert {"process_0-of-2.json", "process_1-of-2.json"} <= set(os.listdir(data_dir))
