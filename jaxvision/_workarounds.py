"""Workarounds for bugs in the JAX/XLA releases jaxvision supports, applied at import.

XLA:CPU in jaxlib 0.10.x lowers some batched matmuls in training graphs to YNNPACK fusions
whose fp32 dot kernel (``ynn::dot_fp32_1x64x1_1x16x1_avx512``) segfaults. A reproducer that
is small enough to report: the gradient of an IIC-style loss on five stacked softmax heads,
``einsum("bd,hdc->hbc")`` with ``B = 1536, C = 50`` (``tests/test_workarounds.py``). Passing
``--xla_cpu_experimental_ynn_fusion_type=`` (no YNN fusions) avoids it, at no measurable cost
for jaxvision's workloads. XLA reads ``XLA_FLAGS`` when the CPU backend is created, so the flag
is added here, before any computation, unless:

* the user already chose YNN fusion types in ``XLA_FLAGS``;
* ``JAXVISION_KEEP_XLA_FLAGS=1`` is set (leave the environment alone);
* the installed jaxlib is not 0.10.x (the flag is experimental and may not exist elsewhere;
  XLA aborts on unknown flags).

If a computation has already created the CPU backend when jaxvision is imported, the flag
comes too late to take effect (a warning says so). The flag is set in this process's
environment, so subprocesses inherit it; a subprocess running a different jaxlib that does not
know the flag would abort on it (set ``JAXVISION_KEEP_XLA_FLAGS=1`` there).
"""

from __future__ import annotations

import os
import warnings

_FLAG = "--xla_cpu_experimental_ynn_fusion_type="


def _jaxlib_version() -> tuple[int, ...]:
  try:
    from importlib import metadata  # pylint: disable=import-outside-toplevel
    version = metadata.version("jaxlib")
  except Exception:  # pylint: disable=broad-except
    return ()
  parts = []
  for piece in version.split(".")[:3]:
    digits = "".join(ch for ch in piece if ch.isdigit())
    parts.append(int(digits) if digits else 0)
  return tuple(parts)


def apply() -> bool:
  """Adds the YNN-fusion flag to ``XLA_FLAGS`` when needed; returns whether it did."""
  if os.environ.get("JAXVISION_KEEP_XLA_FLAGS") == "1":
    return False
  flags = os.environ.get("XLA_FLAGS", "")
  if "xla_cpu_experimental_ynn_fusion_type" in flags:
    return False
  if _jaxlib_version()[:2] != (0, 10):
    return False
  os.environ["XLA_FLAGS"] = (flags + " " + _FLAG).strip()
  if _backends_initialized():
    warnings.warn(
        "jaxvision was imported after JAX created its backends, so the XLA:CPU workaround "
        f"flag {_FLAG!r} cannot take effect in this process; import jaxvision before running "
        "any JAX computation (or set it in XLA_FLAGS yourself).", RuntimeWarning, stacklevel=3)
  return True


def _backends_initialized() -> bool:
  import sys  # pylint: disable=import-outside-toplevel
  if "jax" not in sys.modules:
    return False
  try:
    from jax._src import xla_bridge  # pylint: disable=import-outside-toplevel
    return bool(xla_bridge.backends_are_initialized())
  except Exception:  # pylint: disable=broad-except
    return False
