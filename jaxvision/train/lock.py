"""One run per workdir: ``WorkdirLock``, the lock file ``<workdir>/.lock``.

Two training runs writing the same workdir interleave checkpoints, ``metrics.jsonl`` and
``results.json`` and corrupt them. :func:`~jaxvision.train.loop.train_and_evaluate` holds a
:class:`WorkdirLock` for the whole run, so a second run on the same workdir refuses to start.

The lock file holds ``{"pid", "host", "started", "token"}``. It is created atomically
(``O_CREAT | O_EXCL``) and, while held, its modification time is refreshed every
``refresh_s`` seconds. A lock found at start is

* live, and the start refused with :class:`WorkdirLockedError`, when its holder runs on this
  host (``os.kill(pid, 0)``) or, from another host sharing the file system, when it was
  refreshed less than ``stale_after_s`` seconds ago;
* stale otherwise (a killed run): it is taken over with a one-line warning. A takeover
  replaces the file (``os.replace``) under a second ``O_EXCL`` file, ``.lock.takeover``, so
  of two runs starting together on a stale lock exactly one wins.

In a multi-process run (``jax.process_count() > 1``) only process 0 holds the lock, and
``acquire`` is collective: every process calls it and every process refuses if process 0
could not take the lock.
"""

from __future__ import annotations

import datetime
import errno
import json
import logging
import os
import socket
import sys
import threading
import time
import uuid
from typing import Any

__all__ = ["LOCK_FILE", "WorkdirLock", "WorkdirLockedError"]

LOCK_FILE = ".lock"
_TAKEOVER_SUFFIX = ".takeover"
_TAKEOVER_STALE_S = 30.0  # a takeover takes milliseconds; an older .takeover file is left over

_log = logging.getLogger(__name__)
_held_here: set[str] = set()  # lock paths held by this process
_held_here_guard = threading.Lock()


class WorkdirLockedError(RuntimeError):
  """Another run holds the workdir. Attributes: ``workdir``, ``pid``, ``host``, ``path``."""

  def __init__(self, message: str, *, workdir: str, pid: Any = None, host: Any = None,
               path: str | None = None):
    super().__init__(message)
    self.workdir, self.pid, self.host, self.path = workdir, pid, host, path


def _pid_start(pid: int) -> str | None:
  """The start time of ``pid`` in clock ticks since boot (Linux), to detect pid reuse."""
  try:
    with open(f"/proc/{pid}/stat") as f:
      return f.read().rsplit(")", 1)[1].split()[19]
  except (OSError, IndexError):
    return None


def _pid_alive(pid: int, pid_start: str | None) -> bool:
  """Whether ``pid`` on this host still runs the process that wrote the lock."""
  try:
    os.kill(pid, 0)
  except ProcessLookupError:
    return False
  except PermissionError:  # exists, owned by another user
    pass
  try:
    with open(f"/proc/{pid}/stat") as f:
      if f.read().rsplit(")", 1)[1].split()[0] == "Z":  # a zombie has finished
        return False
  except (OSError, IndexError):
    pass
  if pid_start is not None:
    now = _pid_start(pid)
    if now is not None and now != pid_start:  # the pid was reused by another process
      return False
  return True


def _process_layout() -> tuple[int, int]:
  """``(process_index, process_count)``, without initializing JAX's backend: ``(0, 1)`` when
  neither ``jax.distributed`` nor the backend is initialized yet (or JAX is not imported)."""
  if "jax" not in sys.modules:
    return 0, 1
  import jax  # pylint: disable=import-outside-toplevel
  from jax._src import xla_bridge  # pylint: disable=import-outside-toplevel
  if not (jax.distributed.is_initialized() or xla_bridge.backends_are_initialized()):
    return 0, 1
  return jax.process_index(), jax.process_count()


def _broadcast_from_process_0(value: int) -> int:
  import numpy as np  # pylint: disable=import-outside-toplevel
  from jax.experimental import multihost_utils  # pylint: disable=import-outside-toplevel
  return int(multihost_utils.broadcast_one_to_all(np.int32(value)))


class WorkdirLock:
  """Holds ``<workdir>/.lock`` so that no other run uses ``workdir`` meanwhile.

  Use as a context manager (released on exit, also on an exception) or call
  :meth:`acquire` / :meth:`release`.

  Args:
    workdir: the run's directory (must exist).
    stale_after_s: a lock from another host not refreshed for this long is stale.
    refresh_s: how often the holder refreshes the lock's modification time; 0 disables;
      ``None`` means ``min(60, stale_after_s / 4)``.
    main_process_only: in a multi-process run, only process 0 takes the lock.

  >>> import tempfile
  >>> with tempfile.TemporaryDirectory() as d:
  ...   with WorkdirLock(d) as lock:
  ...     held, exists = lock.held, os.path.exists(os.path.join(d, LOCK_FILE))
  ...   held, exists, os.path.exists(os.path.join(d, LOCK_FILE))
  (True, True, False)
  """

  def __init__(self, workdir: str | os.PathLike, *, stale_after_s: float = 900.0,
               refresh_s: float | None = None, main_process_only: bool = True):
    # Plain checks: this module imports only the standard library (no JAX until it is used).
    if isinstance(stale_after_s, bool) or not isinstance(stale_after_s, (int, float)):
      raise TypeError(f"`stale_after_s` must be a number, got {stale_after_s!r}.")
    if not stale_after_s > 0:
      raise ValueError(f"`stale_after_s` must be > 0, got {stale_after_s!r}.")
    if refresh_s is None:
      refresh_s = min(60.0, stale_after_s / 4)
    if isinstance(refresh_s, bool) or not isinstance(refresh_s, (int, float)):
      raise TypeError(f"`refresh_s` must be a number, got {refresh_s!r}.")
    if not refresh_s >= 0:
      raise ValueError(f"`refresh_s` must be >= 0, got {refresh_s!r}.")
    if refresh_s and refresh_s >= stale_after_s:
      raise ValueError(f"`refresh_s` ({refresh_s}) must be < `stale_after_s` "
                       f"({stale_after_s}), or the holder's lock goes stale while it runs.")
    self.workdir = os.path.abspath(os.fspath(workdir))
    self.path = os.path.join(self.workdir, LOCK_FILE)
    self.stale_after_s = float(stale_after_s)
    self.refresh_s = float(refresh_s)
    self.main_process_only = main_process_only
    self._token: str | None = None
    self._stop = threading.Event()
    self._refresher: threading.Thread | None = None

  @property
  def held(self) -> bool:
    """Whether this object holds the lock file (``False`` on processes other than 0)."""
    return self._token is not None

  def __enter__(self) -> WorkdirLock:
    return self.acquire()

  def __exit__(self, *exc_info) -> None:
    self.release()

  # --- acquire / release ---------------------------------------------------------------------

  def acquire(self) -> WorkdirLock:
    """Takes the lock, or raises :class:`WorkdirLockedError` if another run holds it."""
    if self.held:
      raise RuntimeError(f"this WorkdirLock already holds {self.path!r}.")
    if not os.path.isdir(self.workdir):
      raise FileNotFoundError(f"`workdir` {self.workdir!r} is not a directory.")
    index, count = _process_layout() if self.main_process_only else (0, 1)
    error: WorkdirLockedError | None = None
    if index == 0:
      try:
        self._acquire_file()
      except WorkdirLockedError as e:
        error = e
    try:
      refused = count > 1 and _broadcast_from_process_0(int(error is None)) == 0
    except BaseException:
      self.release()
      raise
    if refused:
      if error is None:  # a process other than 0: process 0 refused
        error = WorkdirLockedError(
            f"process 0 could not lock workdir {self.workdir!r} (see its error): another run "
            "uses it. Two runs must not share a workdir.", workdir=self.workdir, path=self.path)
      self.release()
      raise error
    if error is not None:
      raise error
    return self

  def release(self) -> None:
    """Removes the lock file if this object holds it; safe to call more than once."""
    self._stop.set()
    if self._refresher is not None:
      self._refresher.join()
      self._refresher = None
    token, self._token = self._token, None
    if token is None:
      return
    with _held_here_guard:
      _held_here.discard(self.path)
    info = self._read()
    if info is not None and info.get("token") == token:
      try:
        os.unlink(self.path)
      except FileNotFoundError:
        pass
    else:
      _log.warning("workdir lock %s was removed or taken over by another run while this one "
                   "held it.", self.path)

  # --- internals -----------------------------------------------------------------------------

  def _content(self, token: str) -> bytes:
    pid = os.getpid()
    info = {"pid": pid, "host": socket.gethostname(), "token": token,
            "started": datetime.datetime.now(datetime.timezone.utc).isoformat(
                timespec="seconds"),
            "pid_start": _pid_start(pid)}
    return (json.dumps(info) + "\n").encode()

  def _read(self) -> dict[str, Any] | None:
    """The lock's JSON; ``None`` if there is no lock; ``{}`` if it is empty or unreadable."""
    try:
      with open(self.path, "rb") as f:
        data = f.read()
    except FileNotFoundError:
      return None
    try:
      info = json.loads(data)
    except ValueError:
      return {}
    return info if isinstance(info, dict) else {}

  def _acquire_file(self) -> None:
    with _held_here_guard:  # reserve the path in this process first (threads)
      if self.path in _held_here:
        raise WorkdirLockedError(
            f"workdir {self.workdir!r} is already in use by this process (pid {os.getpid()}): "
            "two runs must not share a workdir; use a new --workdir.",
            workdir=self.workdir, pid=os.getpid(), host=socket.gethostname(), path=self.path)
      _held_here.add(self.path)
    try:
      self._acquire_file_reserved()
    except BaseException:
      with _held_here_guard:
        _held_here.discard(self.path)
      raise

  def _acquire_file_reserved(self) -> None:
    token = uuid.uuid4().hex
    for _ in range(50):
      if self._create(token):
        return self._start(token)
      info = self._read()
      if info is None:  # released in between: try again
        continue
      if not info:  # being written (or garbage): wait briefly, then judge its age
        time.sleep(0.05)
        info = self._read()
        if info is None:
          continue
      reason = self._stale_reason(info)
      if reason is None:
        raise self._locked_error(info)
      if self._take_over(info, token):
        _log.warning("taking over the stale workdir lock %s (%s).", self.path, reason)
        return self._start(token)
      time.sleep(0.05)  # another starter is taking it over: look again
    raise WorkdirLockedError(f"could not lock workdir {self.workdir!r}: {self.path} keeps "
                             "changing; another run is starting on it.",
                             workdir=self.workdir, path=self.path)

  def _create(self, token: str) -> bool:
    try:
      fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
    except FileExistsError:
      return False
    try:
      os.write(fd, self._content(token))
      os.fsync(fd)
    finally:
      os.close(fd)
    return True

  def _age(self) -> float:
    try:
      return time.time() - os.stat(self.path).st_mtime
    except FileNotFoundError:
      return float("inf")

  def _stale_reason(self, info: dict[str, Any]) -> str | None:
    """Why the lock ``info`` is stale, or ``None`` if its holder may be running."""
    pid, host = info.get("pid"), info.get("host")
    if not isinstance(pid, int) or not isinstance(host, str):
      age = self._age()
      return f"unreadable, {age:.0f} s old" if age > _TAKEOVER_STALE_S else None
    if host == socket.gethostname():
      if pid == os.getpid():  # not held by this process (checked first): the pid was reused
        return f"pid {pid} is this process, which does not hold it"
      if not _pid_alive(pid, info.get("pid_start")):
        return f"pid {pid} on this host is not running"
      return None
    age = self._age()
    if age > self.stale_after_s:
      return f"host {host!r} has not refreshed it for {age:.0f} s"
    return None

  def _locked_error(self, info: dict[str, Any]) -> WorkdirLockedError:
    pid, host = info.get("pid"), info.get("host")
    where = (f"pid {pid} on host {host!r}" if pid is not None
             else "a run that is still writing the lock")
    started = f", started {info['started']}" if info.get("started") else ""
    remote = ""
    if isinstance(host, str) and host != socket.gethostname():
      remote = (f" (a lock from another host counts as stale {self.stale_after_s:.0f} s after "
                "its last refresh)")
    return WorkdirLockedError(
        f"workdir {self.workdir!r} is in use by another training run: {where}{started} holds "
        f"{self.path}{remote}. Two runs must not share a workdir: use a new --workdir, or "
        "--distributed to run one job over several processes. If that run is gone, delete "
        "the lock file.", workdir=self.workdir, pid=pid, host=host, path=self.path)

  def _take_over(self, stale: dict[str, Any], token: str) -> bool:
    """Replaces the stale lock ``stale`` by ours, under ``.lock.takeover``; ``True`` if won."""
    guard = self.path + _TAKEOVER_SUFFIX
    try:
      fd = os.open(guard, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
    except FileExistsError:
      try:
        if time.time() - os.stat(guard).st_mtime > _TAKEOVER_STALE_S:  # its taker died
          os.unlink(guard)
      except FileNotFoundError:
        pass
      return False
    os.close(fd)
    try:
      if self._read() != stale:  # changed since we judged it: judge again
        return False
      tmp = f"{self.path}.{token}.tmp"
      with open(tmp, "wb") as f:
        f.write(self._content(token))
        f.flush()
        os.fsync(f.fileno())
      os.replace(tmp, self.path)
      return True
    finally:
      try:
        os.unlink(guard)
      except OSError as e:
        if e.errno != errno.ENOENT:
          raise

  def _start(self, token: str) -> None:
    self._token = token
    if self.refresh_s:
      self._stop.clear()
      self._refresher = threading.Thread(target=self._refresh, args=(token,), daemon=True,
                                         name=f"WorkdirLock({self.workdir})")
      self._refresher.start()

  def _refresh(self, token: str) -> None:
    """Touches the lock every ``refresh_s`` so that other hosts see the holder is alive."""
    while not self._stop.wait(self.refresh_s):
      info = self._read()
      if info is None or info.get("token") != token:
        return  # released, or taken over (reported by release)
      try:
        os.utime(self.path)
      except OSError:
        pass
