"""Labels and hyper-parameters out of contract for the detection losses (issue 13).

Each row is a call and what it must do. Concrete labels outside ``[0, C)`` are refused with a
``ValueError`` naming ``labels``, the bad value and the range. Traced labels (``jit``,
``vmap``, ``grad``) give the documented values instead: a negative label is ignored (loss 0,
no gradient; in ``ssd_loss`` the anchor is neither positive nor negative, as if absent) and a
label ``>= C`` gives NaN. A traced hyper-parameter raises ``TypeError`` naming it.
"""

from __future__ import annotations

import math
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxvision import ops
from jaxvision.reference import losses as ref
from tests.bad_inputs._table import Raises, Value, assert_outcome


LOGITS = np.array([[2.0, 0.0, -1.0], [0.5, 0.5, 0.0], [0.0, 1.0, 3.0]], np.float32)  # C = 3
OFF = np.zeros((3, 4), np.float32)
TGT = np.ones((3, 4), np.float32)
CE = ref.softmax_cross_entropy(LOGITS, [0, 1, 2])      # in-range losses, to build the rows
FOCAL = ref.focal_loss(LOGITS, [0, 1, 2])
NAN = math.nan


def _labels(*values):
  return np.array(values, np.int32)


def _ssd(labels, jit=False, **kw):
  """``ssd_loss(...)[0]`` on the table's anchors (``[3, C]``)."""
  def fn(x, o, y, t):
    return ops.ssd_loss(x, o, y, t, **kw)[0]
  return lambda: (jax.jit(fn) if jit else fn)(LOGITS, OFF, _labels(*labels), TGT)


def _ssd_without_first(labels, **kw):
  """The loss as if the first anchor did not exist."""
  return lambda: ops.ssd_loss(LOGITS[1:], OFF[1:], _labels(*labels[1:]), TGT[1:], **kw)[0]


def _jit(fn, *args, **kw):
  return lambda: jax.jit(lambda *a: fn(*a, **kw))(*args)


def _bad_label(bad):
  return Raises(ValueError, rf"`labels` must hold class ids in \[0, 3\) .*found {bad}\.")


def _traced(name):
  return Raises(TypeError, rf"`{name}` must be a .*Python number, got .*Trace")


CE_GRAD_IGNORED = lambda: jax.jit(jax.grad(  # noqa: E731
    lambda x, y: jnp.sum(ops.softmax_cross_entropy(x, y))))(LOGITS, _labels(-1, 1, 2))[0]

ROWS = [
    # Concrete labels: refused, naming the value and the range.
    pytest.param(lambda: ops.softmax_cross_entropy(LOGITS, _labels(0, 3, 1)), _bad_label(3),
                 id="ce-concrete-label=C"),
    pytest.param(lambda: ops.softmax_cross_entropy(LOGITS, _labels(-1, 0, 1)), _bad_label(-1),
                 id="ce-concrete-label=-1"),
    pytest.param(lambda: ops.softmax_cross_entropy(LOGITS, jnp.array([0, 7, 1])),
                 _bad_label(7), id="ce-concrete-jax-array-label=7"),
    pytest.param(lambda: ops.focal_loss(LOGITS, _labels(0, 3, 1)), _bad_label(3),
                 id="focal-concrete-label=C"),
    pytest.param(lambda: ops.focal_loss(LOGITS, _labels(-1, 0, 1)), _bad_label(-1),
                 id="focal-concrete-label=-1"),
    pytest.param(_ssd((0, 3, 1)), _bad_label(3), id="ssd-concrete-label=C"),
    pytest.param(_ssd((-1, 0, 1)), _bad_label(-1), id="ssd-concrete-label=-1"),
    pytest.param(_ssd((-1, 0, 1), classification="focal"), _bad_label(-1),
                 id="ssd-focal-concrete-label=-1"),
    pytest.param(_ssd((0, 1, -1), hard_negative_ratio=3.0), _bad_label(-1),
                 id="ssd-mining-concrete-label=-1"),
    # Traced labels: a label >= C is NaN, a negative one is ignored.
    pytest.param(_jit(ops.softmax_cross_entropy, LOGITS, _labels(0, 3, 1)),
                 Value("NaN", [CE[0], NAN, ref.softmax_cross_entropy(LOGITS[2], 1)]),
                 id="ce-jit-label=C"),
    pytest.param(_jit(ops.softmax_cross_entropy, LOGITS, _labels(-1, 1, 2)),
                 Value("ignored", [0.0, CE[1], CE[2]]), id="ce-jit-label=-1"),
    pytest.param(lambda: jax.vmap(ops.softmax_cross_entropy)(LOGITS, _labels(-1, 1, 2)),
                 Value("ignored", [0.0, CE[1], CE[2]]), id="ce-vmap-label=-1"),
    pytest.param(CE_GRAD_IGNORED, Value("ignored: no gradient", [0.0, 0.0, 0.0]),
                 id="ce-jit-grad-label=-1"),
    pytest.param(_jit(ops.focal_loss, LOGITS, _labels(0, 3, 1)),
                 Value("NaN", [FOCAL[0], NAN, ref.focal_loss(LOGITS[2], 1)]),
                 id="focal-jit-label=C"),
    pytest.param(_jit(ops.focal_loss, LOGITS, _labels(-1, 1, 2)),
                 Value("ignored", [0.0, FOCAL[1], FOCAL[2]]), id="focal-jit-label=-1"),
    pytest.param(_ssd((0, 3, 1), jit=True), Value("NaN", NAN), id="ssd-jit-label=C"),
    pytest.param(_ssd((0, 1, 3), jit=True, hard_negative_ratio=3.0), Value("NaN", NAN),
                 id="ssd-mining-jit-label=C"),
    pytest.param(_ssd((-1, 0, 2), jit=True),
                 Value("ignored: as if absent", _ssd_without_first((-1, 0, 2))),
                 id="ssd-jit-label=-1"),
    pytest.param(_ssd((-1, 0, 2), jit=True, classification="focal"),
                 Value("ignored: as if absent",
                       _ssd_without_first((-1, 0, 2), classification="focal")),
                 id="ssd-focal-jit-label=-1"),
    pytest.param(_ssd((-1, 0, 2), jit=True, hard_negative_ratio=1.0),
                 Value("ignored: never a hard negative",
                       _ssd_without_first((-1, 0, 2), hard_negative_ratio=1.0)),
                 id="ssd-mining-jit-label=-1"),
    pytest.param(_jit(lambda *a: ops.ssd_loss(*a)[1]["num_positives"], LOGITS, OFF,
                      _labels(-1, -2, 2), TGT),
                 Value("ignored: not counted in N_pos", 1), id="ssd-jit-num-positives"),
    # Traced hyper-parameters: TypeError naming them (not TracerBoolConversionError).
    pytest.param(lambda: jax.jit(lambda g: ops.focal_loss(LOGITS, _labels(0, 1, 2), gamma=g))(
        2.0), _traced("gamma"), id="focal-jit-gamma"),
    pytest.param(lambda: jax.jit(lambda a: ops.focal_loss(LOGITS, _labels(0, 1, 2), alpha=a))(
        0.25), _traced("alpha"), id="focal-jit-alpha"),
    pytest.param(lambda: jax.jit(lambda d: ops.smooth_l1_loss(OFF, TGT, delta=d))(1.0),
                 _traced("delta"), id="smooth-l1-jit-delta"),
    pytest.param(lambda: jax.jit(lambda r: ops.hard_negative_mask(
        CE, np.array([True, False, False]), ratio=r))(3.0), _traced("ratio"),
                 id="hard-negatives-jit-ratio"),
    pytest.param(lambda: jax.jit(lambda g: _ssd((0, 1, 2), classification="focal",
                                                focal_gamma=g)())(2.0),
                 _traced("focal_gamma"), id="ssd-jit-focal-gamma"),
    pytest.param(lambda: jax.jit(lambda a: _ssd((0, 1, 2), classification="focal",
                                                focal_alpha=a)())(0.25),
                 _traced("focal_alpha"), id="ssd-jit-focal-alpha"),
    pytest.param(lambda: jax.jit(lambda r: _ssd((0, 1, 2), hard_negative_ratio=r)())(3.0),
                 _traced("hard_negative_ratio"), id="ssd-jit-hard-negative-ratio"),
    # The same numbers as Python values: checked as before.
    pytest.param(lambda: ops.focal_loss(LOGITS, _labels(0, 1, 2), gamma=NAN),
                 Raises(ValueError, "`gamma` must not be NaN"), id="focal-gamma-nan"),
    pytest.param(lambda: ops.smooth_l1_loss(OFF, TGT, delta=-1.0),
                 Raises(ValueError, "`delta` must be > 0, got -1.0"), id="smooth-l1-delta<0"),
    pytest.param(lambda: ops.smooth_l1_loss(OFF, TGT, delta=2.0),
                 Value("a number", [2.0, 2.0, 2.0]), id="smooth-l1-delta=2"),
]


@pytest.mark.parametrize("call, outcome", ROWS)
def test_row(call: Callable[[], Any], outcome: Raises | Value):
  assert_outcome(call, outcome)
