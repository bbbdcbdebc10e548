"""``--distributed`` from the CLI: the tiny MINE experiment trained by 2 processes on
127.0.0.1 (1 CPU device each, each reading only its half of every global batch) gives the
single-process run's losses and estimate; two runs on one workdir without ``--distributed``
do not share it. (MINE: a small network, so the three runs compile in seconds; the same
check passed with the tiny SSD on a book-format folder when the driver was written.)"""

from __future__ import annotations

import json
import os
import pathlib
import socket
import subprocess
import sys
import time

import numpy as np
import pytest


REPO_ROOT = pathlib.Path(__file__).resolve().parents[2]


def _env(cache_dir) -> dict[str, str]:
  env = dict(os.environ)
  env.update({"JAX_PLATFORMS": "cpu", "XLA_FLAGS": "--xla_force_host_platform_device_count=1",
              "JAX_COMPILATION_CACHE_DIR": str(cache_dir),
              "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0"})
  env.pop("JAX_ENABLE_X64", None)
  return env


def _free_port() -> int:
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


def _cli(workdir, *extra) -> list[str]:
  return [sys.executable, "-m", "experiments.mine_gaussian", "--config", "tiny", "--rho", "0.5",
          "--steps", "6", "--batch-size", "100", "--workdir", str(workdir), "--no-progress",
          *extra]


def _wait(procs, logs, timeout=300) -> list[int]:
  deadline = time.monotonic() + timeout
  codes = []
  for p in procs:
    try:
      codes.append(p.wait(timeout=max(deadline - time.monotonic(), 1)))
    except subprocess.TimeoutExpired:
      for q in procs:
        q.kill()
      pytest.fail("timed out:\n" + "\n".join(pathlib.Path(l).read_text()[-3000:] for l in logs))
  return codes


def _losses(workdir) -> list[float]:
  lines = (pathlib.Path(workdir) / "rho0.5" / "metrics.jsonl").read_text().splitlines()
  return [r["loss"] for r in map(json.loads, lines) if r.get("split") == "train"]


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
  root = tmp_path_factory.mktemp("dist")
  return root, root / "cache"


@pytest.mark.slow
def test_two_processes_match_one(setup):
  root, cache = setup
  single = root / "single"
  log = root / "single.txt"
  with open(log, "w") as f:
    rc = subprocess.run(_cli(single), cwd=REPO_ROOT, env=_env(cache), stdout=f,
                        stderr=subprocess.STDOUT, timeout=300).returncode
  assert rc == 0, log.read_text()[-3000:]

  multi = root / "multi"
  coordinator = f"127.0.0.1:{_free_port()}"
  logs = [root / f"p{i}.txt" for i in range(2)]
  procs = []
  for i in range(2):
    with open(logs[i], "w") as f:
      procs.append(subprocess.Popen(
          _cli(multi, "--distributed", "--coordinator", coordinator,
               "--num-processes", "2", "--process-id", str(i)),
          cwd=REPO_ROOT, env=_env(cache), stdout=f, stderr=subprocess.STDOUT))
  codes = _wait(procs, logs)
  assert codes == [0, 0], "\n".join(l.read_text()[-3000:] for l in logs)

  one = json.loads((single / "rho0.5" / "results.json").read_text())
  two = json.loads((multi / "rho0.5" / "results.json").read_text())
  assert two["machine"]["process_count"] == 2 and one["machine"]["process_count"] == 1
  losses = _losses(multi)
  assert len(losses) == 6
  np.testing.assert_allclose(losses, _losses(single), rtol=1e-4)
  assert two["estimate"] == pytest.approx(one["estimate"], abs=1e-4)
  # Only process 0 printed the summary line.
  assert "MINE tiny rho=0.5" in logs[0].read_text()
  assert "MINE tiny rho=0.5" not in logs[1].read_text()


@pytest.mark.slow
def test_second_run_on_a_workdir_refuses(setup):
  root, cache = setup
  workdir = root / "shared_workdir"
  logs = [root / f"r{i}.txt" for i in range(2)]
  with open(logs[0], "w") as f:  # a long run, stopped once the second one has been refused
    first = subprocess.Popen(_cli(workdir, "--steps", "1000000"), cwd=REPO_ROOT,
                             env=_env(cache), stdout=f, stderr=subprocess.STDOUT)
  try:
    deadline = time.monotonic() + 180
    while not (workdir / "rho0.5" / ".lock").exists() and time.monotonic() < deadline:
      assert first.poll() is None, logs[0].read_text()[-3000:]
      time.sleep(0.05)
    with open(logs[1], "w") as f:
      second = subprocess.run(_cli(workdir), cwd=REPO_ROOT, env=_env(cache),
                              stdout=f, stderr=subprocess.STDOUT, timeout=300)
    assert first.poll() is None, logs[0].read_text()[-3000:]  # still training, untouched
  finally:
    first.kill()
    first.wait()
  text = logs[1].read_text()
  assert second.returncode == 1, text[-3000:]
  assert str(workdir) in text and "Traceback" not in text
  assert "must not share a workdir" in text
  # Nothing of the second run in the workdir: each logged step once, in order.
  metrics = workdir / "rho0.5" / "metrics.jsonl"
  lines = metrics.read_text().splitlines() if metrics.exists() else []
  steps = [json.loads(l)["step"] for l in lines if json.loads(l).get("split") == "train"]
  assert steps == sorted(set(steps))
