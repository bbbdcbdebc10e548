"""Argument validation shared by every part of jaxvision, the kernels included.

Every check runs on static information (shapes, dtypes, Python numbers), so inside ``jit``
it runs once at trace time and fails before any computation, with an error naming the
argument. This module imports only NumPy and JAX: ``jaxvision.kernels`` (leaves of the
import graph) may use it.

>>> check_int(3, "num_steps", minimum=1)
3
>>> check_int(0, "num_steps", minimum=1)
Traceback (most recent call last):
ValueError: `num_steps` must be >= 1, got 0.
"""

from __future__ import annotations

import functools
import math
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np


# ---------------------------------------------------------------------------------------------
# Arrays.


def array(x: Any) -> Any:
  """``x`` itself if it already has a shape and dtype (no copy, no dispatch), else an array."""
  if hasattr(x, "shape") and hasattr(x, "dtype"):
    return x
  return jnp.asarray(x)


def check_last_dim(arr: Any, name: str, size: int) -> None:
  """Raises ``ValueError`` unless ``arr`` has shape ``[..., size]``."""
  if len(arr.shape) < 1 or arr.shape[-1] != size:
    raise ValueError(f"`{name}` must have shape [..., {size}], got shape {tuple(arr.shape)}.")


def compute_dtype(arr: Any, name: str, *, allow_int: bool) -> np.dtype:
  """The floating dtype ``arr`` is computed in: its own, or float32 for narrower/int input.

  Integer and bool input is promoted to float32 when ``allow_int`` and rejected with
  ``TypeError`` otherwise.
  """
  dtype = _float_dtype(arr.dtype, allow_int, bool(jax.config.jax_enable_x64))
  if isinstance(dtype, str):
    raise TypeError(f"`{name}` must be {dtype}.")
  return dtype


@functools.lru_cache(maxsize=None)
def _float_dtype(dtype: Any, allow_int: bool, x64: bool) -> np.dtype | str:
  """:func:`compute_dtype`'s answer per input dtype, cached (these checks run on every op
  call; uncached they cost tens of microseconds, a fifth of a 1000-box NMS); a str is the
  end of the error message."""
  del x64  # part of the cache key: canonicalize_dtype depends on it
  dtype = jnp.dtype(dtype)
  if jnp.issubdtype(dtype, jnp.floating):
    if jnp.finfo(dtype).bits < 32:
      return jnp.dtype(jnp.float32)
    return jnp.dtype(jax.dtypes.canonicalize_dtype(dtype))  # float64 only under jax_enable_x64
  if jnp.issubdtype(dtype, jnp.integer) or dtype == jnp.bool_:
    if allow_int:
      return jnp.dtype(jnp.float32)
    return f"a floating-point array, got dtype {dtype}"
  return f"a real floating-point array, got dtype {dtype}"


@functools.lru_cache(maxsize=None)
def promote_types(a: Any, b: Any) -> np.dtype:
  """``jnp.promote_types``, cached (it runs on every op call)."""
  return jnp.promote_types(a, b)


# ---------------------------------------------------------------------------------------------
# Python numbers.


def _is_int(value: Any) -> bool:
  return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


def check_int(value: Any, name: str, *, minimum: int | None = None,
              maximum: int | None = None) -> int:
  """A static Python (or NumPy) int in ``[minimum, maximum]`` (either bound optional).

  ``TypeError`` for anything that is not an int (``bool`` and ``2.0`` included),
  ``ValueError`` for an int out of range.
  """
  if not _is_int(value):
    raise TypeError(f"`{name}` must be a Python int, got {value!r}.")
  too_small = minimum is not None and value < minimum
  too_large = maximum is not None and value > maximum
  if too_small or too_large:
    if maximum is None:
      bound = f">= {minimum}"
    elif minimum is None:
      bound = f"<= {maximum}"
    else:
      bound = f"in [{minimum}, {maximum}]"
    raise ValueError(f"`{name}` must be {bound}, got {value}.")
  return int(value)


def check_size(value: Any, name: str) -> int:
  """A static, non-negative integer (an output size)."""
  if not _is_int(value):
    raise TypeError(f"`{name}` must be a non-negative Python int, got {value!r}.")
  if value < 0:
    raise ValueError(f"`{name}` must be >= 0, got {value}.")
  return int(value)


def check_power_of_two(value: Any, name: str, *, maximum: int | None = None) -> int:
  """A positive power-of-two int, at most ``maximum`` (Triton's rule for blocks and warps).

  Raises ``ValueError`` for anything else, a non-int included: these are tuning fields of the
  kernels' frozen config dataclasses, checked in ``__post_init__``.
  """
  if not _is_int(value) or value <= 0 or value & (value - 1):
    raise ValueError(f"`{name}` must be a positive power of two, got {value!r}.")
  if maximum is not None and value > maximum:
    raise ValueError(f"`{name}` must be at most {maximum}, got {value!r}.")
  return int(value)


def _as_float(value: Any, name: str, expected: str) -> float:
  try:
    return float(value)
  except (TypeError, ValueError):
    raise TypeError(f"`{name}` must be {expected}, got {value!r}.") from None


def check_float(value: Any, name: str) -> float:
  """A static Python number that is not NaN, as a float."""
  v = _as_float(value, name, "a Python number")
  if math.isnan(v):
    raise ValueError(f"`{name}` must not be NaN.")
  return v


def check_positive(value: Any, name: str) -> float:
  """A static Python number ``> 0``, as a float."""
  v = _as_float(value, name, "a positive Python number")
  if not v > 0.0:
    raise ValueError(f"`{name}` must be > 0, got {value!r}.")
  return v


def check_unit_interval(value: Any, name: str) -> float:
  """A static threshold in [0, 1], as a float."""
  v = _as_float(value, name, "a Python number in [0, 1]")
  if not 0.0 <= v <= 1.0:  # False for NaN
    raise ValueError(f"`{name}` must be in [0, 1], got {value!r}.")
  return v


def check_index(index: Any, length: int) -> int:
  """``index`` into a source of ``length`` records (negative counts from the end) as a
  position in ``[0, length)``; ``IndexError`` outside, as a sequence raises.

  >>> check_index(-1, 5)
  4
  """
  index = int(index)
  if not -length <= index < length:
    raise IndexError(f"index {index} out of range for a source of length {length}.")
  return index % length


def check_choice(value: Any, name: str, choices: tuple[str, ...]) -> str:
  """``value`` if it is one of ``choices``."""
  if value not in choices:
    raise ValueError(f"`{name}` must be one of {choices}, got {value!r}.")
  return value


# ---------------------------------------------------------------------------------------------
# Pairs.


def check_size_pair(value: Any, name: str, *, allow_none: bool = False
                    ) -> tuple[int, int] | None:
  """A pair ``(height, width)`` of positive ints (an image or output size), as a tuple.

  ``None`` passes through when ``allow_none`` ("keep the size"). Raises ``ValueError`` for
  anything else (a scalar, a triple, floats, zeros).

  >>> check_size_pair([240, 320], "image_size")
  (240, 320)
  """
  if value is None and allow_none:
    return None
  try:
    height, width = value
  except (TypeError, ValueError):
    raise ValueError(f"`{name}` must be a pair of positive ints (height, width), got "
                     f"{value!r}.") from None
  if not (_is_int(height) and _is_int(width)) or min(height, width) < 1:
    raise ValueError(f"`{name}` must be a pair of positive ints (height, width), got "
                     f"{value!r}.")
  return int(height), int(width)


# ---------------------------------------------------------------------------------------------
# Values. These look at the data, so they can only run on concrete arrays: on a tracer
# (inside `jit`, `grad`, `vmap`) they return without checking, and the op's documented traced
# behaviour applies instead (a NaN result, a dropped element, ...). On concrete input they
# copy the array to the host, which synchronises with the device.


def concrete_value(x: Any) -> np.ndarray | None:
  """``x`` as a NumPy array when its values are known, ``None`` when it is a tracer.

  >>> concrete_value([1, 2]).tolist()
  [1, 2]
  >>> jax.jit(lambda x: concrete_value(x) is None)(1.0)
  Array(True, dtype=bool)
  """
  if isinstance(x, jax.core.Tracer):
    return None
  return np.asarray(x)


def check_class_ids(labels: Any, name: str, num_classes: int) -> None:
  """Raises ``ValueError`` if concrete ``labels`` hold a value outside ``[0, num_classes)``.

  >>> check_class_ids(np.array([0, 2, -1]), "labels", 3)
  Traceback (most recent call last):
  ValueError: `labels` must hold class ids in [0, 3) (the logits' last axis), found -1.
  """
  values = concrete_value(labels)
  if values is None or values.size == 0:
    return
  low, high = values.min(), values.max()
  if low < 0 or high >= num_classes:
    bad = low if low < 0 else high
    raise ValueError(f"`{name}` must hold class ids in [0, {num_classes}) (the logits' last "
                     f"axis), found {bad}.")


def check_probability_rows(z: Any, name: str, *, tolerance: float) -> None:
  """Raises ``ValueError`` unless concrete ``z`` (``[..., C]``) holds probabilities: finite,
  in ``[0, 1]``, each row summing to 1 within ``tolerance`` (e.g. logits, or an all-zero
  row, fail).

  >>> check_probability_rows(np.array([[0.5, 0.5], [0.0, 0.0]]), "z",
  ...                        tolerance=1e-3)  # doctest: +ELLIPSIS
  Traceback (most recent call last):
  ValueError: `z` must hold probabilities whose rows (last axis) ... row (1,) sums to 0.
  """
  values = concrete_value(z)
  if values is None or values.size == 0:
    return
  values = values.astype(np.float64)
  outside = ~((values >= 0.0) & (values <= 1.0))  # NaN is outside too
  if outside.any():
    bad = float(values[outside].flat[0])
    raise ValueError(f"`{name}` must hold probabilities in [0, 1] (softmax outputs, not "
                     f"logits), found {bad:.6g}.")
  error = np.abs(values.sum(axis=-1) - 1.0)
  if error.max() > tolerance:
    row = np.unravel_index(int(np.argmax(error)), error.shape)
    total = float(values[row].sum())
    raise ValueError(f"`{name}` must hold probabilities whose rows (last axis) sum to 1 "
                     f"within {tolerance:g}; row {tuple(int(i) for i in row)} sums to "
                     f"{total:.6g}.")


def check_flat_indices(indices: Any, name: str, size: int, *, why: str) -> None:
  """Raises ``ValueError`` if concrete ``indices`` hold a value outside ``[0, size)``;
  ``why`` says where ``size`` comes from.

  >>> check_flat_indices(np.array([0, 5]), "argmax", 4, why="a 2x2 plane")  # doctest: +ELLIPSIS
  Traceback (most recent call last):
  ValueError: `argmax` must hold indices in [0, 4) (a 2x2 plane), found index 5 (smallest 0, ...

  """
  values = concrete_value(indices)
  if values is None or values.size == 0:
    return
  low, high = int(values.min()), int(values.max())
  if low < 0 or high >= size:
    bad = low if low < 0 else high
    raise ValueError(f"`{name}` must hold indices in [0, {size}) ({why}), found index {bad} "
                     f"(smallest {low}, largest {high}).")
