"""Tests of ``jaxvision.train.lock``: one run per workdir, across processes, stale locks taken
over (once), and ``train_and_evaluate`` holding the lock for its whole run."""

from __future__ import annotations

import json
import logging
import os
import socket
import subprocess
import sys
import textwrap
import time

import pytest

from jaxvision.train import TrainConfig, WorkdirLock, WorkdirLockedError, train_and_evaluate
from jaxvision.train.lock import LOCK_FILE
from tests.train import _tiny
from tests.train.conftest import REPO_ROOT, read_tail, spawn_tiny

# A child process that takes the lock on argv[1] and reports: "locked <pid>" then holds it
# until stdin closes, or "refused <message>" (exit 3). With argv[2], it first sleeps until that
# time.time(), so that several children start together. It loads lock.py alone (not the
# jaxvision.train package, which imports flax and optax) to start quickly.
_CHILD = textwrap.dedent("""
    import importlib.util, sys, time
    spec = importlib.util.spec_from_file_location("lock", "jaxvision/train/lock.py")
    lock_lib = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(lock_lib)
    WorkdirLock, WorkdirLockedError = lock_lib.WorkdirLock, lock_lib.WorkdirLockedError
    if len(sys.argv) > 2:
      time.sleep(max(0.0, float(sys.argv[2]) - time.time()))
    try:
      lock = WorkdirLock(sys.argv[1]).acquire()
    except WorkdirLockedError as e:
      print("refused", e, flush=True)
      sys.exit(3)
    print("locked", __import__("os").getpid(), flush=True)
    sys.stdin.read()
    lock.release()
""")


def _spawn_child(workdir: str, *start_at: float) -> subprocess.Popen:
  return subprocess.Popen([sys.executable, "-c", _CHILD, workdir, *map(str, start_at)],
                          cwd=REPO_ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True)


def _status(child: subprocess.Popen) -> str:
  """The child's "locked ..." or "refused ..." line (skipping log lines such as warnings)."""
  lines = []
  for line in child.stdout:
    if line.startswith(("locked", "refused")):
      return line
    lines.append(line)
  return "".join(lines)


def _lock_info(workdir) -> dict:
  with open(os.path.join(workdir, LOCK_FILE)) as f:
    return json.load(f)


def _write_lock(workdir, **info) -> str:
  path = os.path.join(workdir, LOCK_FILE)
  with open(path, "w") as f:
    json.dump({"started": "2024-01-01T00:00:00+00:00", **info}, f)
  return path


def _dead_pid() -> int:
  proc = subprocess.Popen([sys.executable, "-c", "pass"])
  proc.wait()
  return proc.pid


def test_taken_and_released(tmp_path):
  path = tmp_path / LOCK_FILE
  with WorkdirLock(tmp_path) as lock:
    assert lock.held and path.exists()
    info = _lock_info(tmp_path)
    assert info["pid"] == os.getpid() and info["host"] == socket.gethostname()
    assert {"started", "token"} <= set(info)
    with pytest.raises(WorkdirLockedError, match="already in use by this process"):
      WorkdirLock(tmp_path).acquire()  # a second object in the same process
  assert not lock.held and not path.exists()
  lock.release()  # idempotent
  lock.acquire()  # reusable
  assert path.exists()
  lock.release()
  assert not path.exists()


def test_released_after_an_exception(tmp_path):
  with pytest.raises(ZeroDivisionError):
    with WorkdirLock(tmp_path):
      assert (tmp_path / LOCK_FILE).exists()
      _ = 1 / 0
  assert not (tmp_path / LOCK_FILE).exists()
  with WorkdirLock(tmp_path):  # and free again
    pass


def test_another_process_is_refused(tmp_path):
  workdir = str(tmp_path)
  with WorkdirLock(workdir):
    child = _spawn_child(workdir)
    out, _ = child.communicate(timeout=120)
  assert child.returncode == 3, out
  assert out.startswith("refused")
  assert repr(workdir) in out and f"pid {os.getpid()}" in out
  assert repr(socket.gethostname()) in out and "must not share a workdir" in out
  assert "--workdir" in out and "--distributed" in out


def test_lock_held_by_another_process_and_released(tmp_path):
  """A live holder in another process blocks this one (and ``train_and_evaluate``) until it
  releases the lock."""
  workdir = str(tmp_path)
  child = _spawn_child(workdir)
  try:
    line = _status(child)
    assert line.startswith("locked"), line
    child_pid = int(line.split()[1])
    with pytest.raises(WorkdirLockedError, match=f"pid {child_pid} on host") as info:
      WorkdirLock(workdir).acquire()
    assert info.value.workdir == workdir and info.value.pid == child_pid
    config = TrainConfig(num_steps=2, batch_size=8, checkpoint_every=1, progress=False)
    with pytest.raises(WorkdirLockedError, match="must not share a workdir"):
      train_and_evaluate(config, workdir, task=_tiny.make_task())
    assert os.listdir(workdir) == [LOCK_FILE]  # refused before writing anything
  finally:
    child.stdin.close()
    assert child.wait(timeout=60) == 0
  assert not os.path.exists(os.path.join(workdir, LOCK_FILE))
  with WorkdirLock(workdir):
    pass


def test_train_and_evaluate_holds_and_releases(tmp_path, monkeypatch):
  workdir = str(tmp_path)
  task = _tiny.make_task()
  seen = []

  def evaluate(state):
    seen.append(os.path.exists(os.path.join(workdir, LOCK_FILE)))
    if len(seen) == 2:
      raise RuntimeError("evaluation failed")
    return task.evaluate(state)

  config = TrainConfig(num_steps=2, batch_size=8, checkpoint_every=0, eval_every=1,
                       progress=False)
  failing = type(task)(init=task.init, loss_fn=task.loss_fn, optimizer=task.optimizer,
                       train_iter=task.train_iter, evaluate=evaluate)
  with pytest.raises(RuntimeError, match="evaluation failed"):
    train_and_evaluate(config, workdir, task=failing)
  assert seen == [True, True]  # held during the run
  assert not os.path.exists(os.path.join(workdir, LOCK_FILE))  # released on the exception
  out = train_and_evaluate(config, workdir, task=task)
  assert out.results["final_step"] == 2
  assert not os.path.exists(os.path.join(workdir, LOCK_FILE))


def test_stale_lock_of_a_dead_pid_is_taken_over(tmp_path, caplog):
  pid = _dead_pid()
  _write_lock(tmp_path, pid=pid, host=socket.gethostname())
  with caplog.at_level(logging.WARNING, logger="jaxvision.train.lock"):
    with WorkdirLock(tmp_path):
      assert _lock_info(tmp_path)["pid"] == os.getpid()
  assert not (tmp_path / LOCK_FILE).exists()
  [record] = caplog.records
  assert "stale" in record.getMessage() and f"pid {pid}" in record.getMessage()
  assert "\n" not in record.getMessage()


def test_reused_pid_and_unreadable_locks(tmp_path):
  # This process's own pid, written by a run before it (pid reuse): stale.
  _write_lock(tmp_path, pid=os.getpid(), host=socket.gethostname())
  with WorkdirLock(tmp_path):
    pass
  # An empty lock file (a starter that died between create and write): stale once old ...
  path = tmp_path / LOCK_FILE
  path.write_text("")
  with pytest.raises(WorkdirLockedError):
    WorkdirLock(tmp_path).acquire()
  os.utime(path, (time.time() - 600,) * 2)
  with WorkdirLock(tmp_path):
    pass


def test_lock_from_another_host_goes_stale_by_age(tmp_path):
  path = _write_lock(tmp_path, pid=1, host="some-other-host")
  with pytest.raises(WorkdirLockedError, match="'some-other-host'") as info:
    WorkdirLock(tmp_path, stale_after_s=60).acquire()
  assert info.value.host == "some-other-host" and str(tmp_path) in str(info.value)
  os.utime(path, (time.time() - 120,) * 2)  # not refreshed for 2 minutes
  with WorkdirLock(tmp_path, stale_after_s=60):
    assert _lock_info(tmp_path)["pid"] == os.getpid()


def test_holder_refreshes_the_lock(tmp_path):
  with WorkdirLock(tmp_path, stale_after_s=10, refresh_s=0.05):
    path = tmp_path / LOCK_FILE
    os.utime(path, (time.time() - 100,) * 2)
    deadline = time.monotonic() + 10
    while time.time() - path.stat().st_mtime > 5:
      assert time.monotonic() < deadline, "the lock was not refreshed"
      time.sleep(0.02)


def test_argument_validation(tmp_path):
  with pytest.raises(ValueError, match="`stale_after_s`"):
    WorkdirLock(tmp_path, stale_after_s=0)
  with pytest.raises(TypeError, match="`stale_after_s`"):
    WorkdirLock(tmp_path, stale_after_s="10")
  with pytest.raises(ValueError, match="`refresh_s`"):
    WorkdirLock(tmp_path, refresh_s=-1)
  with pytest.raises(ValueError, match="`refresh_s`"):
    WorkdirLock(tmp_path, stale_after_s=10, refresh_s=20)
  with pytest.raises(FileNotFoundError, match="`workdir`"):
    WorkdirLock(tmp_path / "missing").acquire()


def test_starters_racing_on_a_stale_lock_one_wins(tmp_path):
  """Four processes start together on a dead run's lock: exactly one takes it over."""
  workdir = str(tmp_path)
  _write_lock(workdir, pid=_dead_pid(), host=socket.gethostname())
  start_at = time.time() + 2  # after the children start (they import no JAX)
  children = [_spawn_child(workdir, start_at) for _ in range(4)]
  try:
    lines = [_status(child) for child in children]
  finally:
    for child in children:
      child.stdin.close()
    codes = [child.wait(timeout=60) for child in children]
  assert sum(line.startswith("locked") for line in lines) == 1, lines
  assert all(line.startswith(("locked", "refused")) for line in lines), lines
  assert sorted(codes) == [0, 3, 3, 3], lines
  assert not os.path.exists(os.path.join(workdir, LOCK_FILE))


@pytest.mark.slow
def test_multiprocess_run_refuses_a_locked_workdir(tmp_path, compile_cache):
  """A two-process run on a held workdir: process 0 is refused, and process 1 with it (the
  lock is taken by process 0 only, the answer shared)."""
  workdir = str(tmp_path / "run")
  os.makedirs(workdir)
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    coordinator = f"127.0.0.1:{s.getsockname()[1]}"
  logs = [str(tmp_path / f"p{i}.txt") for i in range(2)]
  with WorkdirLock(workdir):
    procs = [spawn_tiny(["train", workdir, "--coordinator", coordinator, "--num-processes",
                         "2", "--process-id", str(i)], compile_cache, log_path=logs[i])
             for i in range(2)]
    try:
      codes = [p.wait(timeout=120) for p in procs]
    finally:
      for p in procs:
        if p.poll() is None:
          p.kill()
          p.wait()
    assert os.listdir(workdir) == [LOCK_FILE]  # nothing written, the lock still ours
    assert _lock_info(workdir)["pid"] == os.getpid()
  texts = [read_tail(log) for log in logs]
  assert codes[0] != 0 and codes[1] != 0, texts
  assert "WorkdirLockedError" in texts[0] and f"pid {os.getpid()}" in texts[0], texts[0]
  assert "process 0 could not lock workdir" in texts[1], texts[1]
