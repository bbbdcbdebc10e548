"""Choosing between the portable XLA path and a Pallas kernel (``implementation=``).

Every op with a kernel takes ``implementation: Literal["xla", "pallas"] | None = None``, as
``jax.nn.dot_product_attention`` does:

* ``"xla"``: the pure ``jax.numpy`` path; runs everywhere.
* ``"pallas"``: the kernel in ``jaxvision.kernels``; compiled on a GPU, run by the Pallas
  interpreter elsewhere (slow; for checking the kernel on CPU, which is how CI tests it).
* ``None``: the kernel on a GPU where it has been validated (see
  ``jaxvision.kernels.GPU_VALIDATED``), the XLA path everywhere else.

Both paths return the same results: floats to float32 rounding, and the same selections
except where an IoU lies within one ulp of the threshold (the kernels round every product;
XLA may fuse ``a * b + c`` into one FMA). The kernels compute in float32: with
``jax_enable_x64`` and float64 inputs, use ``"xla"`` for float64 arithmetic.

Kernel names used as keys of ``jaxvision.kernels.GPU_VALIDATED``: ``"iou"`` (``box_iou``,
``generalized_box_iou``), ``"nms"`` (``nms``, ``batched_nms``), ``"soft_nms"`` (the IoU
kernel feeding the soft-NMS loop), ``"multiclass_nms"`` (the all-pairs mask) and ``"iic"``.
"""

from __future__ import annotations

from typing import Literal

import jax

Implementation = Literal["xla", "pallas"] | None

_CHOICES = ("xla", "pallas")


def resolve(implementation, kernel: str) -> tuple[str, bool]:
  """Returns ``(path, interpret)`` for ``implementation`` and the kernel named ``kernel``."""
  if implementation is not None and implementation not in _CHOICES:
    raise ValueError(
        f"`implementation` must be 'xla', 'pallas' or None, got {implementation!r}.")
  on_gpu = jax.default_backend() == "gpu"
  if implementation is None:
    from jaxvision.kernels import GPU_VALIDATED  # pylint: disable=import-outside-toplevel
    implementation = "pallas" if on_gpu and kernel in GPU_VALIDATED else "xla"
  return implementation, implementation == "pallas" and not on_gpu
