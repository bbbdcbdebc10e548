"""Inputs out of contract for IIC, MINE and max unpooling (issue 13).

Each row is a call and what it must do. Concrete inputs are refused with a ``ValueError``
naming the argument: IIC's ``z``/``z_bar`` must be probabilities (in ``[0, 1]``, rows summing
to 1 within ``max(1e-3, eps of the dtype)``), MINE's ``ema`` finite and ``> 0``,
``max_unpool``'s ``argmax`` inside the ``output_shape`` plane. Traced inputs (``jit``,
``vmap``, ``grad``) give the documented values: NaN for the IIC problem or the MINE step that
breaks the contract, and dropped values for out-of-range unpooling indices.
"""

from __future__ import annotations

import math
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxvision import ops
from jaxvision.reference import iic as ref_iic
from tests.bad_inputs._table import Raises, Value, assert_outcome


NAN = math.nan
Z = np.array([[0.7, 0.2, 0.1], [0.1, 0.8, 0.1], [0.2, 0.2, 0.6], [0.5, 0.25, 0.25]],
             np.float32)                                    # [B = 4, C = 3] probabilities
LOGITS = np.array([[2.5, -1.0, 0.0], [0.0, 3.0, -2.0], [1.0, 1.0, 2.0], [0.5, 0.0, 0.0]],
                  np.float32)                               # what comes before the softmax
ZERO_ROW = Z.copy()
ZERO_ROW[1] = 0.0
NEGATIVE = Z.copy()
NEGATIVE[2] = [-0.5, 1.0, 0.5]
HALF_ROW = Z.copy()
HALF_ROW[3] = [0.25, 0.125, 0.125]
WITHIN = Z.copy()
WITHIN[0] = [0.7, 0.2, 0.1008]                              # sums to 1.0008: within 1e-3
IIC = float(ref_iic.iic_loss(Z, Z[::-1]))
T_JOINT, T_MARGINAL = np.array([1.0, 3.0], np.float32), np.array([0.0, 1.0], np.float32)
DV = 2.0 - math.log((1 + math.e) / 2)                       # the DV bound of those scores

VALUES = np.array([1.0, 2.0, 3.0, 4.0], np.float32).reshape(1, 2, 2, 1)
SMALL_PLANE = np.array([5, 7, 13, 15], np.int32).reshape(1, 2, 2, 1)  # 2x2 pool of a 4x4
MIXED = np.array([-1, 3, 4, 0], np.int32).reshape(1, 2, 2, 1)         # in a 2x2 plane
UNPOOLED_4X4 = np.zeros(16)
UNPOOLED_4X4[[5, 7, 13, 15]] = [1.0, 2.0, 3.0, 4.0]
UNPOOLED_4X4 = UNPOOLED_4X4.reshape(1, 4, 4, 1)


def _probabilities(name, found):
  return Raises(ValueError, rf"`{name}` must hold probabilities in \[0, 1\] .*found {found}")


def _row_sum(name, row, total, tolerance=r"0\.001"):
  return Raises(ValueError, rf"`{name}` must hold probabilities whose rows .* within "
                rf"{tolerance}; row \({row},\) sums to {total}\.")


def _jit(fn, *args, **kw):
  return lambda: jax.jit(lambda *a: fn(*a, **kw))(*args)


def _unpool(argmax, output_shape):
  return lambda: ops.max_unpool(VALUES, argmax, output_shape=output_shape)


def _unpool_jit(argmax, output_shape):
  return lambda: jax.jit(lambda v, a: ops.max_unpool(v, a, output_shape=output_shape))(
      VALUES, argmax)


def _ema_error(got):
  return Raises(ValueError, rf"`ema` must be finite and > 0 \(the `new_ema` of the previous "
                rf"call\), got {got}\.")


ROWS = [
    # IIC, concrete: not probabilities.
    pytest.param(lambda: ops.iic_loss(LOGITS, Z), _probabilities("z", "2.5"),
                 id="iic-concrete-logits-z"),
    pytest.param(lambda: ops.iic_loss(Z, LOGITS), _probabilities("z_bar", "2.5"),
                 id="iic-concrete-logits-z_bar"),
    pytest.param(lambda: ops.iic_loss(ZERO_ROW, Z), _row_sum("z", 1, 0),
                 id="iic-concrete-zero-row"),
    pytest.param(lambda: ops.iic_loss(NEGATIVE, Z), _probabilities("z", "-0.5"),
                 id="iic-concrete-negative"),
    pytest.param(lambda: ops.iic_loss(Z, HALF_ROW), _row_sum("z_bar", 3, "0.5"),
                 id="iic-concrete-row-sums-0.5"),
    pytest.param(lambda: ops.iic_loss(np.where(Z > 0.6, NAN, Z), Z),
                 _probabilities("z", "nan"), id="iic-concrete-nan"),
    pytest.param(lambda: ops.iic_loss(jnp.asarray(LOGITS, jnp.bfloat16), Z),
                 _probabilities("z", "2.5"), id="iic-concrete-bfloat16-logits"),
    pytest.param(lambda: ops.iic_loss(jnp.full((4, 2), 0.51, jnp.bfloat16),
                                      jnp.full((4, 2), 0.5, jnp.bfloat16)),
                 _row_sum("z", 0, "1.02344", tolerance=r"0\.0078125"),
                 id="iic-concrete-bfloat16-row-sum"),
    pytest.param(lambda: ops.iic_loss(LOGITS, Z, implementation="pallas"),
                 _probabilities("z", "2.5"), id="iic-pallas-concrete-logits"),
    pytest.param(lambda: ops.joint_probability(ZERO_ROW, Z), _row_sum("z", 1, 0),
                 id="joint-concrete-zero-row"),
    pytest.param(lambda: ops.iic_loss(WITHIN, Z[::-1]), Value(
        "a number: within the tolerance", lambda: ref_iic.iic_loss(WITHIN, Z[::-1])),
                 id="iic-concrete-within-tolerance"),
    # IIC, traced: NaN for each problem that breaks the contract.
    pytest.param(_jit(ops.iic_loss, LOGITS, Z), Value("NaN", NAN), id="iic-jit-logits"),
    pytest.param(_jit(ops.iic_loss, ZERO_ROW, Z), Value("NaN", NAN), id="iic-jit-zero-row"),
    pytest.param(_jit(ops.iic_loss, Z, NEGATIVE), Value("NaN", NAN), id="iic-jit-negative"),
    pytest.param(_jit(ops.iic_loss, np.stack([Z, LOGITS]), np.stack([Z[::-1], Z])),
                 Value("NaN for the bad problem only", [IIC, NAN]), id="iic-jit-sub-heads"),
    pytest.param(lambda: jax.vmap(ops.iic_loss)(np.stack([HALF_ROW, Z]),
                                                np.stack([Z, Z[::-1]])),
                 Value("NaN for the bad problem only", [NAN, IIC]), id="iic-vmap-half-row"),
    pytest.param(_jit(ops.iic_loss, LOGITS, Z, implementation="pallas"), Value("NaN", NAN),
                 id="iic-pallas-jit-logits"),
    pytest.param(_jit(ops.joint_probability, LOGITS, Z), Value("NaN", np.full((3, 3), NAN)),
                 id="joint-jit-logits"),
    pytest.param(_jit(ops.iic_loss, Z, Z[::-1]), Value("a number", IIC), id="iic-jit-valid"),
    # MINE: ema out of range.
    pytest.param(lambda: ops.mine_loss(T_JOINT, T_MARGINAL, ema=-1.0), _ema_error("-1.0"),
                 id="mine-concrete-ema=-1"),
    pytest.param(lambda: ops.mine_loss(T_JOINT, T_MARGINAL, ema=0.0), _ema_error("0.0"),
                 id="mine-concrete-ema=0"),
    pytest.param(lambda: ops.mine_loss(T_JOINT, T_MARGINAL, ema=jnp.inf), _ema_error("inf"),
                 id="mine-concrete-ema=inf"),
    pytest.param(lambda: ops.mine_loss(T_JOINT, T_MARGINAL, ema=np.float32(NAN)),
                 _ema_error("nan"), id="mine-concrete-ema=nan"),
    pytest.param(lambda: ops.mine_loss(T_JOINT, T_MARGINAL, ema=1.0, decay=1.0),
                 Raises(ValueError, r"`decay` must be in \[0, 1\), got 1.0"),
                 id="mine-concrete-decay=1"),
    pytest.param(lambda: jax.jit(lambda e: ops.mine_loss(T_JOINT, T_MARGINAL, ema=e))(-1.0),
                 Value("NaN loss and new_ema", [NAN, NAN]), id="mine-jit-ema=-1"),
    pytest.param(lambda: jax.jit(lambda e: ops.mine_loss(T_JOINT, T_MARGINAL, ema=e))(0.0),
                 Value("NaN loss and new_ema", [NAN, NAN]), id="mine-jit-ema=0"),
    pytest.param(lambda: jax.jit(lambda d: ops.mine_loss(T_JOINT, T_MARGINAL, ema=1.0,
                                                         decay=d))(0.5),
                 Raises(TypeError, r"`decay` must be a Python number, got .*Trace"),
                 id="mine-jit-decay"),
    pytest.param(lambda: jax.jit(lambda e: ops.mine_loss(T_JOINT, T_MARGINAL, ema=e,
                                                         decay=0.5))(1.0),
                 Value("a number", [-DV, 0.5 + 0.5 * (1 + math.e) / 2]), id="mine-jit-valid"),
    # max_unpool: indices outside the output plane.
    pytest.param(_unpool(SMALL_PLANE, (2, 2)), Raises(
        ValueError, r"`argmax` must hold indices in \[0, 4\) \(the 2x2 plane of "
        r"`output_shape`\), found index 15 \(smallest 5, largest 15\)"),
                 id="unpool-concrete-output-shape-too-small"),
    pytest.param(_unpool(MIXED, (2, 2)), Raises(ValueError, r"`argmax` .*found index -1"),
                 id="unpool-concrete-negative-index"),
    pytest.param(_unpool(jnp.asarray(MIXED), (2, 2)),
                 Raises(ValueError, r"`argmax` .*found index -1"),
                 id="unpool-concrete-jax-array"),
    pytest.param(_unpool_jit(SMALL_PLANE, (2, 2)), Value("dropped", np.zeros((1, 2, 2, 1))),
                 id="unpool-jit-output-shape-too-small"),
    pytest.param(_unpool_jit(MIXED, (2, 2)),
                 Value("dropped", np.array([[4.0, 0.0], [0.0, 2.0]]).reshape(1, 2, 2, 1)),
                 id="unpool-jit-mixed"),
    pytest.param(lambda: jax.vmap(lambda v, a: ops.max_unpool(v, a, output_shape=(2, 2)))(
        VALUES, MIXED), Value("dropped", np.array([[4.0, 0.0], [0.0, 2.0]]).reshape(
            1, 2, 2, 1)), id="unpool-vmap-mixed"),
    pytest.param(_unpool(SMALL_PLANE, (4, 4)), Value("in range: placed", UNPOOLED_4X4),
                 id="unpool-concrete-valid"),
]


@pytest.mark.parametrize("call, outcome", ROWS)
def test_row(call: Callable[[], Any], outcome: Raises | Value):
  assert_outcome(call, outcome)
