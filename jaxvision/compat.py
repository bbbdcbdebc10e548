"""Compatibility with the JAX/XLA releases jaxvision supports: workarounds for their bugs.

XLA:CPU in jaxlib 0.10.x lowers some reductions in training graphs to YNNPACK fusions whose
fp32 dot kernel (``ynn::dot_fp32_1x64x1_1x16x1_avx512``) segfaults. A reproducer small
enough to report: the gradient of an IIC-style loss on five stacked softmax heads,
``einsum("bd,hdc->hbc")`` with ``B = 1536, C = 50`` (``tests/test_compat.py``).
Compiling that graph with the XLA option ``xla_cpu_experimental_ynn_fusion_type=""`` (no YNN
fusions) avoids it.

The option is applied per compilation, not process-wide, because YNN's reduce fusions make
jaxvision's NMS loops faster on CPU (``experiments/results/measurements.md``).
``jaxvision.train`` compiles its training step with :func:`compiler_options`; pass the same
to ``jax.jit(..., compiler_options=...)`` for training steps of your own that crash on
jaxlib 0.10.x CPU::

  step = jax.jit(train_step, compiler_options=jaxvision.compat.compiler_options())
"""

from __future__ import annotations

import functools

import jax


@functools.cache
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


def compiler_options(backend: str | None = None) -> dict[str, str] | None:
  """XLA compiler options for a training step on ``backend`` (default: JAX's default).

  ``{"xla_cpu_experimental_ynn_fusion_type": ""}`` on the CPU backend of jaxlib 0.10.x (see
  the module docstring), else ``None`` (the option is experimental and other releases may
  not know it).
  """
  backend = jax.default_backend() if backend is None else backend
  if backend == "cpu" and _jaxlib_version()[:2] == (0, 10):
    return {"xla_cpu_experimental_ynn_fusion_type": ""}
  return None
