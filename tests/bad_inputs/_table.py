"""The row kinds of the bad-input tables and the one check each table's test runs."""

from __future__ import annotations

import re
from typing import Any, Callable, NamedTuple

import numpy as np
import pytest


class Raises(NamedTuple):
  """The documented error: its type and a regex its message matches."""

  error: type
  match: str


class Value(NamedTuple):
  """A documented value compared numerically (NaN matches NaN)."""

  meaning: str  # what the documented value stands for: "NaN", "ignored", ...
  want: Any     # a number or an array, or a callable returning one


class Returns:
  """A documented value: ``check(result)`` must be true."""

  def __init__(self, check, what: str):
    self.check, self.what = check, what

  def __repr__(self):
    return self.what


def assert_outcome(call: Callable[[], Any], outcome: Any) -> None:
  """Runs ``call`` and asserts its row's outcome: a :class:`Raises` (or an ``(error,
  message regex)`` pair), a :class:`Value` or a :class:`Returns`."""
  if isinstance(outcome, Returns):
    assert outcome.check(call()), outcome
    return
  if isinstance(outcome, Value):
    want = outcome.want() if callable(outcome.want) else outcome.want
    np.testing.assert_allclose(np.asarray(call(), np.float64), np.asarray(want, np.float64),
                               rtol=1e-5, atol=1e-6, err_msg=outcome.meaning)
    return
  error, message = outcome
  with pytest.raises(error) as e:
    call()
  assert re.search(message, str(e.value), re.S), str(e.value)
