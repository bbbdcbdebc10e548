"""Tests of ``jaxvision.train.distributed``: argument validation, and a real two-process run on
127.0.0.1 (gloo CPU collectives) started by ``initialize_distributed`` alone."""

from __future__ import annotations

import socket
import subprocess
import sys
import textwrap

import jax
import pytest

from jaxvision.train import distributed, initialize_distributed, is_main_process
from tests.train.conftest import REPO_ROOT, tiny_env


@pytest.mark.parametrize("kwargs, match", [
    (dict(coordinator="127.0.0.1:1234"), "missing `num_processes`, `process_id`"),
    (dict(num_processes=2, process_id=0), "missing `coordinator`"),
    (dict(coordinator="127.0.0.1:1234", num_processes=2), "missing `process_id`"),
    (dict(coordinator="127.0.0.1", num_processes=2, process_id=0), "`coordinator`"),
    (dict(coordinator=":1234", num_processes=2, process_id=0), "`coordinator`"),
    (dict(coordinator="127.0.0.1:1234", num_processes=0, process_id=0), "`num_processes`"),
    (dict(coordinator="127.0.0.1:1234", num_processes=2, process_id=-1), "`process_id`"),
    (dict(coordinator="127.0.0.1:1234", num_processes=2, process_id=2),
     r"`process_id` must be in \[0, num_processes\) = \[0, 2\)"),
])
def test_argument_validation(kwargs, match):
  with pytest.raises(ValueError, match=match):
    initialize_distributed(**kwargs)


@pytest.mark.parametrize("kwargs, match", [
    (dict(coordinator=1234, num_processes=2, process_id=0), "`coordinator`"),
    (dict(coordinator="h:1", num_processes=2.0, process_id=0), "`num_processes`"),
    (dict(coordinator="h:1", num_processes=2, process_id=True), "`process_id`"),
])
def test_argument_types(kwargs, match):
  with pytest.raises((TypeError, ValueError), match=match):
    initialize_distributed(**kwargs)


def test_calls_jax_distributed(monkeypatch):
  """Without a real cluster: what reaches ``jax.distributed.initialize``, and the error when
  auto-detection finds no cluster."""
  calls = []

  def fake_initialize(**kwargs):
    calls.append(kwargs)
    if kwargs["coordinator_address"] is None:
      raise ValueError("coordinator_address should be defined.")

  monkeypatch.setattr(distributed, "_is_initialized", lambda: False)
  monkeypatch.setattr(jax.distributed, "initialize", fake_initialize)
  initialize_distributed(coordinator="host0:1234", num_processes=2, process_id=1,
                         local_device_ids=[0])
  assert calls == [dict(coordinator_address="host0:1234", num_processes=2, process_id=1,
                        local_device_ids=[0])]
  with pytest.raises(ValueError, match="could not auto-detect a cluster"):
    initialize_distributed()
  assert calls[-1]["coordinator_address"] is None and calls[-1]["num_processes"] is None
  monkeypatch.setattr(distributed, "_is_initialized", lambda: True)
  initialize_distributed()  # already initialized: a no-op
  assert len(calls) == 2


def test_is_main_process_single():
  assert is_main_process() == (jax.process_index() == 0)


# One process of a two-process run: initialize (twice: idempotent), check a mismatched
# re-initialization is refused, then all-gather and sum across the processes.
_PROCESS = textwrap.dedent("""
    import sys
    import numpy as np
    from jaxvision.train import initialize_distributed, is_main_process
    coordinator, pid = sys.argv[1], int(sys.argv[2])
    initialize_distributed(coordinator=coordinator, num_processes=2, process_id=pid)
    initialize_distributed(coordinator=coordinator, num_processes=2, process_id=pid)
    try:
      initialize_distributed(coordinator=coordinator, num_processes=2, process_id=1 - pid)
      print("mismatch not refused")
    except ValueError:
      pass
    import jax
    import jax.numpy as jnp
    from jax.experimental import multihost_utils
    from jax.sharding import NamedSharding, PartitionSpec as P
    gathered = multihost_utils.process_allgather(np.array([10 * (pid + 1)]))
    mesh = jax.make_mesh((jax.device_count(),), ("d",))
    local = np.full((jax.local_device_count(),), pid + 1.0, np.float32)
    x = jax.make_array_from_process_local_data(NamedSharding(mesh, P("d")), local)
    total = jax.jit(jnp.sum, out_shardings=NamedSharding(mesh, P()))(x)
    print(f"count={jax.process_count()} main={is_main_process()} "
          f"gathered={gathered.ravel().tolist()} sum={float(total)}", flush=True)
    jax.distributed.shutdown()
""")


def _free_port() -> int:
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


@pytest.mark.slow
def test_two_processes_on_localhost(compile_cache):
  coordinator = f"127.0.0.1:{_free_port()}"
  env = tiny_env(compile_cache, num_devices=2)
  procs = [subprocess.Popen([sys.executable, "-c", _PROCESS, coordinator, str(i)],
                            cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True) for i in range(2)]
  try:
    outs = [p.communicate(timeout=120)[0] for p in procs]
  finally:
    for p in procs:
      if p.poll() is None:
        p.kill()
        p.wait()
  assert [p.returncode for p in procs] == [0, 0], "\n".join(outs)
  for i, out in enumerate(outs):
    # 2 processes x 2 devices: values 1, 1 (process 0) and 2, 2 (process 1) sum to 6.
    assert f"count=2 main={i == 0} gathered=[10, 20] sum=6.0" in out, out
    assert "mismatch not refused" not in out, out
