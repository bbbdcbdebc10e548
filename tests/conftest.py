"""Test configuration shared by the whole suite."""

import os
import shutil
import tempfile

from hypothesis import HealthCheck, settings

# CI runs derandomized so that a red run can be reproduced exactly; locally examples vary.
settings.register_profile(
    "ci", derandomize=True, deadline=None, print_blob=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
settings.register_profile(
    "dev", deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                 HealthCheck.data_too_large])
settings.load_profile("ci" if os.environ.get("CI") else "dev")

# One persistent XLA compilation cache per test run, shared by the xdist workers and the
# subprocesses they start (they inherit the environment). Most of the suite's time is XLA:CPU
# compiling: the CLI tests build a fresh task per invocation (train, then evaluate the weights,
# then predict), so the same train / eval / predict programs are traced again, and without
# this cache compiled again, up to several times per test and once per worker. The cache
# lives in a fresh temporary directory made by the first process of the run (the xdist
# controller, or pytest itself without -n) and removed when that process ends: nothing is
# carried over between runs, so every run compiles every program at least once and a run's
# time does not depend on the one before it.
_CACHE_ENV = "JAXVISION_TEST_COMPILATION_CACHE"
_OWN_CACHE = None
if not os.environ.get(_CACHE_ENV):
  _OWN_CACHE = tempfile.mkdtemp(prefix="jaxvision-test-xla-cache-")
  os.environ[_CACHE_ENV] = _OWN_CACHE
os.environ["JAX_COMPILATION_CACHE_DIR"] = os.environ[_CACHE_ENV]
_MIN_COMPILE_SECS = 0.0
os.environ["JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"] = str(_MIN_COMPILE_SECS)
os.environ["JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES"] = "0"


def pytest_configure(config):
  del config
  import jax  # pylint: disable=import-outside-toplevel
  # In case jax was imported before the environment above was set.
  jax.config.update("jax_compilation_cache_dir", os.environ["JAX_COMPILATION_CACHE_DIR"])
  jax.config.update("jax_persistent_cache_min_compile_time_secs", _MIN_COMPILE_SECS)
  jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)


def pytest_unconfigure(config):
  del config
  if _OWN_CACHE is not None and os.environ.get(_CACHE_ENV) == _OWN_CACHE:
    shutil.rmtree(_OWN_CACHE, ignore_errors=True)
