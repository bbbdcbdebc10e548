"""Argument validation shared by the ops.

Every check runs at trace time on static information (shapes, dtypes, Python numbers), so it
costs nothing inside ``jit`` and fails before any computation with an error naming the
argument.
"""

from __future__ import annotations

import math
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np


def as_boxes(boxes: Any, name: str, *, allow_int: bool) -> jnp.ndarray:
  """Returns ``boxes`` as an array of shape ``[..., 4]``, float32 or wider.

  Integer boxes are promoted to float32 when ``allow_int`` and rejected with ``TypeError``
  otherwise; bfloat16/float16 are promoted to float32 (computation happens in float32).
  """
  arr = array(boxes)
  check_last_dim(arr, name, 4)
  return arr.astype(compute_dtype(arr, name, allow_int=allow_int))


def as_scores(scores: Any, name: str = "scores") -> jnp.ndarray:
  arr = array(scores)
  return arr.astype(compute_dtype(arr, name, allow_int=False))


def array(x: Any) -> Any:
  """``x`` itself if it already has a shape and dtype (no copy, no dispatch), else an array."""
  if hasattr(x, "shape") and hasattr(x, "dtype"):
    return x
  return jnp.asarray(x)


def check_last_dim(arr: Any, name: str, size: int) -> None:
  if len(arr.shape) < 1 or arr.shape[-1] != size:
    raise ValueError(f"`{name}` must have shape [..., {size}], got shape {tuple(arr.shape)}.")


def compute_dtype(arr: Any, name: str, *, allow_int: bool) -> np.dtype:
  """The floating dtype ``arr`` is computed in: its own, or float32 for narrower/int input."""
  dtype = jnp.dtype(arr.dtype)
  if jnp.issubdtype(dtype, jnp.floating):
    if jnp.finfo(dtype).bits < 32:
      return jnp.dtype(jnp.float32)
    return jnp.dtype(jax.dtypes.canonicalize_dtype(dtype))  # float64 only under jax_enable_x64
  if jnp.issubdtype(dtype, jnp.integer) or dtype == jnp.bool_:
    if allow_int:
      return jnp.dtype(jnp.float32)
    raise TypeError(f"`{name}` must be a floating-point array, got dtype {dtype}.")
  raise TypeError(f"`{name}` must be a real floating-point array, got dtype {dtype}.")


def check_unit_interval(value: Any, name: str) -> float:
  """A static threshold in [0, 1]."""
  try:
    v = float(value)
  except (TypeError, ValueError):
    raise TypeError(f"`{name}` must be a Python number in [0, 1], got {value!r}.") from None
  if not 0.0 <= v <= 1.0 or math.isnan(v):
    raise ValueError(f"`{name}` must be in [0, 1], got {value!r}.")
  return v


def check_positive(value: Any, name: str) -> float:
  try:
    v = float(value)
  except (TypeError, ValueError):
    raise TypeError(f"`{name}` must be a positive Python number, got {value!r}.") from None
  if not v > 0.0:
    raise ValueError(f"`{name}` must be > 0, got {value!r}.")
  return v


def check_float(value: Any, name: str) -> float:
  try:
    v = float(value)
  except (TypeError, ValueError):
    raise TypeError(f"`{name}` must be a Python number, got {value!r}.") from None
  if math.isnan(v):
    raise ValueError(f"`{name}` must not be NaN.")
  return v


def check_size(value: Any, name: str) -> int:
  """A static, non-negative integer (an output size)."""
  if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
    raise TypeError(f"`{name}` must be a non-negative Python int, got {value!r}.")
  if value < 0:
    raise ValueError(f"`{name}` must be >= 0, got {value}.")
  return int(value)


def check_choice(value: Any, name: str, choices: tuple[str, ...]) -> str:
  if value not in choices:
    raise ValueError(f"`{name}` must be one of {choices}, got {value!r}.")
  return value
