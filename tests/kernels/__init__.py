"""Tests of the Pallas kernels (interpret mode on CPU; compiled on GPU), and their shared
float32 oracle."""

from __future__ import annotations

import numpy as np


def iou_f32(boxes1, boxes2) -> np.ndarray:
  """``[N, 4]``, ``[M, 4]`` -> ``[N, M]`` IoU, each operation a correctly rounded float32 one.

  ``inter / (area_a + area_b - inter)`` evaluated step by step in NumPy float32 (no fused
  multiply-adds): what the kernels must reproduce bit for bit.
  """
  a, b = np.asarray(boxes1, np.float32), np.asarray(boxes2, np.float32)
  zero = np.float32(0)

  def area(x):
    return np.maximum(x[:, 2] - x[:, 0], zero) * np.maximum(x[:, 3] - x[:, 1], zero)

  def overlap(lo, hi):
    return np.maximum(np.minimum(a[:, None, hi], b[None, :, hi])
                      - np.maximum(a[:, None, lo], b[None, :, lo]), zero)

  inter = overlap(0, 2) * overlap(1, 3)
  union = area(a)[:, None] + area(b)[None, :] - inter
  positive = union > 0
  iou = np.where(positive, inter / np.where(positive, union, np.float32(1)), zero)
  assert iou.dtype == np.float32
  return iou


def assert_lowers_to_triton(fn, *avals) -> None:
  """Lowers ``jax.jit(fn)`` for CUDA on this (GPU-less) machine and checks it holds Triton
  kernels: Pallas' Triton lowering accepted every kernel (shapes, dtypes, primitives).

  This does not compile the Triton IR to a GPU binary nor run it; it catches a kernel that
  only the interpreter can run. The Triton custom call has no serialisation guarantee, so
  that export check is disabled.
  """
  import jax  # pylint: disable=import-outside-toplevel

  exported = jax.export.export(
      jax.jit(fn), platforms=["cuda"],
      disabled_checks=[jax.export.DisabledSafetyCheck.custom_call("__gpu$xla.gpu.triton")],
  )(*avals)
  assert "__gpu$xla.gpu.triton" in exported.mlir_module()
