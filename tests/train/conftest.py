"""Fixtures for the jaxvision.train tests: launching ``tests/train/_tiny.py`` in subprocesses.

Subprocesses get a fresh JAX runtime (``XLA_FLAGS`` must be set before JAX starts) and can be
SIGKILLed. They share one persistent compilation cache per test session, so the killed run,
its resumption and the reference run compile the tiny model only once.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.fixture(scope="session")
def compile_cache(tmp_path_factory):
  return str(tmp_path_factory.mktemp("jax_cache"))


def tiny_env(cache_dir: str, *, num_devices: int = 1) -> dict[str, str]:
  env = dict(os.environ)
  env["JAX_PLATFORMS"] = "cpu"
  env["XLA_FLAGS"] = f"--xla_force_host_platform_device_count={num_devices}"
  env["JAX_COMPILATION_CACHE_DIR"] = cache_dir
  env["JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"] = "0"
  env["JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES"] = "0"
  env.pop("JAX_ENABLE_X64", None)
  return env


def spawn_tiny(args: list[str], cache_dir: str, *, num_devices: int = 1, log_path: str
               ) -> subprocess.Popen:
  """Starts ``python -m tests.train._tiny ARGS`` with output to ``log_path``."""
  log = open(log_path, "w")  # pylint: disable=consider-using-with
  return subprocess.Popen([sys.executable, "-m", "tests.train._tiny", *args], cwd=REPO_ROOT,
                          env=tiny_env(cache_dir, num_devices=num_devices), stdout=log,
                          stderr=subprocess.STDOUT)


def run_tiny(args: list[str], cache_dir: str, *, num_devices: int = 1, log_path: str,
             timeout: float = 180) -> None:
  """Runs ``python -m tests.train._tiny ARGS`` to completion; fails the test on error."""
  proc = spawn_tiny(args, cache_dir, num_devices=num_devices, log_path=log_path)
  try:
    rc = proc.wait(timeout=timeout)
  except subprocess.TimeoutExpired:
    proc.kill()
    proc.wait()
    pytest.fail(f"`_tiny {' '.join(args)}` timed out:\n{read_tail(log_path)}")
  if rc != 0:
    pytest.fail(f"`_tiny {' '.join(args)}` exited with {rc}:\n{read_tail(log_path)}")


def kill_when(proc: subprocess.Popen, condition, *, log_path: str, timeout: float = 180
              ) -> None:
  """SIGKILLs ``proc`` as soon as ``condition()`` holds; fails if it ends or times out first."""
  deadline = time.monotonic() + timeout
  while not condition():
    if proc.poll() is not None:
      pytest.fail(f"the run ended (rc {proc.returncode}) before it could be killed:\n"
                  f"{read_tail(log_path)}")
    if time.monotonic() > deadline:
      proc.kill()
      proc.wait()
      pytest.fail(f"timed out waiting to kill the run:\n{read_tail(log_path)}")
    time.sleep(0.01)
  os.kill(proc.pid, signal.SIGKILL)
  assert proc.wait(timeout=30) == -signal.SIGKILL


def read_tail(path: str, n: int = 4000) -> str:
  with open(path) as f:
    return f.read()[-n:]


def read_jsonl(workdir: str) -> list[dict]:
  path = os.path.join(workdir, "metrics.jsonl")
  if not os.path.exists(path):
    return []
  with open(path) as f:
    return [json.loads(line) for line in f if line.strip()]


def train_losses(workdir: str) -> list[tuple[int, float]]:
  return [(r["step"], r["loss"]) for r in read_jsonl(workdir) if r["split"] == "train"]


def load_final(workdir: str, process: int = 0) -> dict[str, np.ndarray]:
  with np.load(os.path.join(workdir, f"final_p{process}.npz")) as data:
    return dict(data)


# The run every kill/resume and multi-process test compares with: 24 steps of global batch 8
# (3 epochs of 8 batches), checkpoints every 4 steps, the defaults of `_tiny train`.
@pytest.fixture(scope="session")
def reference_run(tmp_path_factory, compile_cache):
  workdir = str(tmp_path_factory.mktemp("reference"))
  run_tiny(["train", workdir], compile_cache, log_path=os.path.join(workdir, "log.txt"))
  return {"params": load_final(workdir), "losses": train_losses(workdir), "workdir": workdir}
