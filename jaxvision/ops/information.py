"""Mutual-information objectives: IIC's clustering loss and MINE's Donsker-Varadhan bound.

IIC (Ji, Henriques and Vedaldi, ICCV 2019) trains a network to output cluster assignments
``z = softmax(...)`` such that the assignments of two views of the same image share as much
information as possible. With ``z``, ``z_bar`` the ``[B, C]`` softmax outputs of the views:

* ``P = sum_b z_b z_bar_b^T`` (``[C, C]``), symmetrised ``(P + P^T) / 2`` and divided by its
  sum: the joint distribution of the two assignments (:func:`joint_probability`);
* ``P_i = sum_j P_ij``, ``P_j = sum_i P_ij``: the marginals, from the *unclamped* ``P``;
* ``L = -sum_ij P'_ij (ln P'_ij - alpha ln P'_i - alpha ln P'_j)`` with ``X' = max(X, eps)``
  for ``P``, ``P_i`` and ``P_j`` alike (:func:`iic_loss`). With ``alpha = 1``,
  ``L = -I(z; z_bar)``. This clamping rule and ``eps = sys.float_info.epsilon`` are those of
  ``IID_loss`` in the authors' code (xu-ji/IIC), of the oracle ``jaxvision.reference.iic`` and
  of the Pallas kernel ``jaxvision.kernels.iic``.

MINE (Belghazi et al., ICML 2018) estimates ``I(X; Y)`` with a statistics network ``T``
trained to maximise the Donsker-Varadhan lower bound
``I(X; Y) >= E_joint[T] - ln E_marginal[e^T]`` (:func:`mine_lower_bound`). The minibatch
gradient of the second term, ``E[grad(T) e^T] / E[e^T]``, is biased because the denominator
is itself a minibatch mean; the paper (section 3.2) replaces it with a moving average of
``E[e^T]`` over minibatches. :func:`mine_loss` gives that corrected gradient as a pure
function: the moving average is an explicit input and output, no hidden state.

All of this is computed in float32 (bfloat16 and float16 inputs are promoted; float64 stays
float64 under ``jax_enable_x64``). Nothing here knows about networks or training loops.

Inputs out of contract. IIC's ``z`` and ``z_bar`` must be probabilities: finite, in ``[0, 1]``,
each row (last axis) summing to 1 within ``max(1e-3, eps)``, ``eps`` the machine epsilon of
their dtype (so ``1e-3``, or ``2**-7`` for bfloat16). Logits would give a meaningless value
outside ``[-ln C, 0]``, an all-zero row a NaN. On concrete inputs (eager calls) the ops raise
``ValueError`` naming the argument; on traced ones (inside ``jit``, ``grad``, ``vmap``), where
values are unknown, every problem (each ``[B, C]`` pair) that breaks the contract gets a NaN
loss (and a NaN joint distribution), so that it cannot go unnoticed. MINE's ``ema`` must be
finite and ``> 0``: ``ValueError`` when concrete, a NaN loss and ``new_ema`` when traced.
"""

from __future__ import annotations

import functools
import math
import sys
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from jax.typing import ArrayLike

from jaxvision import _checks
from jaxvision.ops import _dispatch

__all__ = ["EPS", "joint_probability", "iic_loss", "mine_lower_bound", "mine_loss"]

EPS = sys.float_info.epsilon  # xu-ji/IIC's clamp, about 2.2e-16 (representable in float32)


# ---------------------------------------------------------------------------------------------
# IIC.


def _row_sum_tolerance(dtype: Any) -> float:
  """How far from 1 a row of probabilities of ``dtype`` may sum: ``max(1e-3, eps(dtype))``.

  Rounding each of a row's values to the dtype moves the sum by at most ``eps / 2``, so
  correctly rounded softmax outputs always pass; logits and all-zero rows do not.

  >>> _row_sum_tolerance(jnp.float32), _row_sum_tolerance(jnp.bfloat16)
  (0.001, 0.0078125)
  """
  return max(1e-3, float(jnp.finfo(dtype).eps))


def _rows_ok(z, tolerance):
  """``[..., B, C] -> [...]``: every value in ``[0, 1]`` and every row summing to 1 (traced
  twin of ``_checks.check_probability_rows``)."""
  z = z.astype(jnp.float32) if jnp.finfo(z.dtype).bits < 32 else z
  in_range = jnp.all((z >= 0) & (z <= 1), axis=(-2, -1))  # False for NaN
  sums = jnp.abs(jnp.sum(z, axis=-1) - 1)
  return in_range & jnp.all(sums <= tolerance, axis=-1)


def _check_views(z: Any, z_bar: Any) -> tuple[jax.Array, jax.Array, Any, float]:
  """Validates a ``[..., B, C]`` pair of softmax outputs; returns them, the compute dtype and
  the row-sum tolerance (the looser of the two dtypes')."""
  z, z_bar = _checks.array(z), _checks.array(z_bar)
  for name, arr in (("z", z), ("z_bar", z_bar)):
    if len(arr.shape) < 2 or arr.shape[-2] == 0 or arr.shape[-1] == 0:
      raise ValueError(f"`{name}` must have shape [..., B, C] with B, C > 0, got shape "
                       f"{tuple(arr.shape)}.")
  if tuple(z.shape) != tuple(z_bar.shape):
    raise ValueError(f"`z` and `z_bar` must have the same shape, got {tuple(z.shape)} and "
                     f"{tuple(z_bar.shape)}.")
  dtype = jnp.promote_types(_checks.compute_dtype(z, "z", allow_int=False),
                            _checks.compute_dtype(z_bar, "z_bar", allow_int=False))
  tolerance = max(_row_sum_tolerance(z.dtype), _row_sum_tolerance(z_bar.dtype))
  for name, arr in (("z", z), ("z_bar", z_bar)):
    _checks.check_probability_rows(arr, name, tolerance=tolerance)
  return z, z_bar, dtype, tolerance


def _check_alpha(alpha: Any) -> float:
  a = _checks.check_float(alpha, "alpha")
  if not 0.0 <= a < math.inf:
    raise ValueError(f"`alpha` must be finite and >= 0, got {alpha!r}.")
  return a


def _check_eps(eps: Any) -> float:
  e = _checks.check_positive(eps, "eps")
  # The clamp must survive the cast to float32, or ln(max(0, eps)) would be -inf.
  if not (math.isfinite(e) and float(np.float32(e)) > 0.0):
    raise ValueError(f"`eps` must be finite and representable as a positive float32, got "
                     f"{eps!r}.")
  return e


def _joint(z, z_bar):
  """``[..., B, C]`` pair -> ``[..., C, C]`` symmetric joint distribution (compute dtype)."""
  p = jnp.einsum("...bi,...bj->...ij", z, z_bar, precision=lax.Precision.HIGHEST)
  p = (p + jnp.swapaxes(p, -1, -2)) / 2
  return p / jnp.sum(p, axis=(-2, -1), keepdims=True)


def _views_ok(z, z_bar, tolerance):
  return _rows_ok(z, tolerance) & _rows_ok(z_bar, tolerance)


@functools.partial(jax.jit, static_argnames=("dtype", "tolerance"))
def _joint_xla(z, z_bar, *, dtype, tolerance):
  p = _joint(z.astype(dtype), z_bar.astype(dtype))
  return jnp.where(_views_ok(z, z_bar, tolerance)[..., None, None], p, jnp.nan)


@functools.partial(jax.jit, static_argnames=("tolerance",))
def _nan_unless_views_ok(loss, z, z_bar, *, tolerance):
  return jnp.where(_views_ok(z, z_bar, tolerance), loss, jnp.nan)


@functools.partial(jax.jit, static_argnames=("alpha", "eps", "dtype", "tolerance"))
def _iic_loss_xla(z, z_bar, *, alpha, eps, dtype, tolerance):
  return _nan_unless_views_ok(_iic_value(z.astype(dtype), z_bar.astype(dtype), alpha=alpha,
                                         eps=eps), z, z_bar, tolerance=tolerance)


def _iic_value(z, z_bar, *, alpha, eps):
  p = _joint(z, z_bar)
  p_i = jnp.sum(p, axis=-1)  # row marginals, from the unclamped P
  p_j = jnp.sum(p, axis=-2)  # column marginals
  p, p_i, p_j = jnp.maximum(p, eps), jnp.maximum(p_i, eps), jnp.maximum(p_j, eps)
  log_ratio = (jnp.log(p) - alpha * jnp.log(p_i)[..., :, None]
               - alpha * jnp.log(p_j)[..., None, :])
  return -jnp.sum(p * log_ratio, axis=(-2, -1))


def _iic_loss_pallas(z, z_bar, *, alpha, eps, interpret):
  from jaxvision.kernels import iic as iic_kernel  # pylint: disable=import-outside-toplevel
  kernel = functools.partial(iic_kernel.iic_loss, alpha=alpha, eps=eps, interpret=interpret)
  lead = tuple(z.shape[:-2])
  if not lead:
    return kernel(z, z_bar)
  flat = (-1,) + tuple(z.shape[-2:])
  losses = jax.vmap(kernel)(jnp.reshape(z, flat), jnp.reshape(z_bar, flat))
  return jnp.reshape(losses, lead)


def joint_probability(z: ArrayLike, z_bar: ArrayLike) -> jax.Array:
  """IIC's joint distribution of two views' cluster assignments, symmetrised and normalised.

  ``P = sum_b outer(z_b, z_bar_b)``, then ``(P + P^T) / 2``, then ``P / sum(P)``. Pure
  ``jax.numpy`` and differentiable (the Pallas kernel's ``joint_probability`` is not; use
  :func:`iic_loss` with ``implementation="pallas"`` for the kernel).

  Args:
    z: ``[..., B, C]`` softmax outputs for the first view (rows sum to 1; any float dtype).
    z_bar: ``[..., B, C]`` softmax outputs for the second view, the same shape.

  Returns:
    ``[..., C, C]`` symmetric, non-negative, each ``[C, C]`` summing to 1; float32 (float64
    for float64 input under ``jax_enable_x64``). Traced inputs that are not probabilities
    give NaN for their ``[C, C]`` (see the module docstring).

  Raises:
    ValueError: for bad shapes, or concrete inputs that are not probabilities (a value
      outside ``[0, 1]``, a row not summing to 1).

  >>> z = jnp.array([[1.0, 0.0], [0.5, 0.5]])
  >>> joint_probability(z, z).tolist()
  [[0.625, 0.125], [0.125, 0.125]]
  """
  z, z_bar, dtype, tolerance = _check_views(z, z_bar)
  return _joint_xla(z, z_bar, dtype=dtype, tolerance=tolerance)


def iic_loss(
    z: ArrayLike,
    z_bar: ArrayLike,
    *,
    alpha: float = 1.0,
    eps: float = EPS,
    implementation: _dispatch.Implementation = None,
) -> jax.Array:
  """The IIC loss ``-sum_ij P_ij (ln P_ij - alpha ln P_i - alpha ln P_j)``; -MI at alpha 1.

  ``P`` is :func:`joint_probability` of the two views; ``P_i = sum_j P_ij`` and
  ``P_j = sum_i P_ij`` are taken from the unclamped ``P``; then ``P``, ``P_i`` and ``P_j``
  are each clamped with ``max(., eps)`` before the logs (xu-ji/IIC's rule). So values and
  gradients stay finite even for one-hot assignments and for clusters nobody uses. With
  ``alpha = 1`` the loss is ``-I(z; z_bar)``, in ``[-ln C, 0]`` up to the clamp: ``-ln C``
  when both views put every image in the same one of ``C`` equally used clusters, ``0`` when
  the views are independent. ``alpha > 1`` weights the marginal entropies more (pushes
  towards balanced clusters); ``alpha = 0`` leaves the joint entropy ``-sum P ln P`` alone.

  Leading dimensions are independent problems: sub-heads ``[H, B, C]`` give ``H`` losses.

  Args:
    z: ``[..., B, C]`` softmax outputs for the first view (any float dtype; computed in
      float32, or float64 for float64 input under ``jax_enable_x64``): values in ``[0, 1]``,
      rows summing to 1 within ``max(1e-3, eps)`` of their dtype. Concrete inputs that are
      not probabilities (logits, all-zero rows, negative values) raise ``ValueError``; traced
      ones give a NaN loss for their problem.
    z_bar: ``[..., B, C]`` softmax outputs for the second view, the same shape and contract.
    alpha: weight of the marginal terms (the paper's lambda); a Python number, finite and
      ``>= 0`` (negative values would reward collapsing onto one cluster).
    eps: the clamp, a Python number ``> 0`` that stays positive in float32.
    implementation: ``"xla"`` (``jax.numpy``), ``"pallas"`` (the kernel
      ``jaxvision.kernels.iic``, interpreted off GPU) or ``None`` (the kernel on a GPU where
      it is validated, XLA elsewhere); see ``jaxvision.ops._dispatch``. Both agree to float32
      rounding, values and gradients.

  Returns:
    ``[...]`` losses (a scalar for ``[B, C]`` input), float32. Differentiable with respect to
    ``z`` and ``z_bar``.

  Raises:
    ValueError: if the shapes differ, ``B`` or ``C`` is 0, concrete ``z``/``z_bar`` are not
      probabilities, or ``alpha``/``eps`` is out of range. TypeError: for non-floating inputs.

  >>> z = jnp.array([[1.0, 0.0], [0.0, 1.0]])
  >>> round(float(iic_loss(z, z)), 4)  # -ln 2: the views share one bit
  -0.6931
  """
  z, z_bar, dtype, tolerance = _check_views(z, z_bar)
  alpha, eps = _check_alpha(alpha), _check_eps(eps)
  path, interpret = _dispatch.resolve(implementation, "iic")
  if path == "pallas":
    loss = _iic_loss_pallas(z, z_bar, alpha=alpha, eps=eps, interpret=interpret)
    return _nan_unless_views_ok(loss, z, z_bar, tolerance=tolerance)
  return _iic_loss_xla(z, z_bar, alpha=alpha, eps=eps, dtype=dtype, tolerance=tolerance)


# ---------------------------------------------------------------------------------------------
# MINE.


def _check_scores(t: Any, name: str) -> jax.Array:
  t = _checks.array(t)
  if math.prod(t.shape) == 0:
    raise ValueError(f"`{name}` must hold at least one value, got shape {tuple(t.shape)}.")
  return t.astype(_checks.compute_dtype(t, name, allow_int=False))


def _log_mean_exp(t):
  return jax.nn.logsumexp(t) - jnp.log(jnp.asarray(t.size, t.dtype))


@jax.jit
def _dv_bound(t_joint, t_marginal):
  return jnp.mean(t_joint) - _log_mean_exp(t_marginal)


def mine_lower_bound(t_joint: ArrayLike, t_marginal: ArrayLike) -> jax.Array:
  """The Donsker-Varadhan lower bound ``mean(T_joint) - ln mean(exp(T_marginal)))`` on MI.

  ``I(X; Y) >= E_{p(x,y)}[T] - ln E_{p(x)p(y)}[e^T]`` for every function ``T``, with equality
  at ``T = ln p(x,y) / (p(x) p(y)) + const``. The second term is computed stably as
  ``logsumexp(T_marginal) - ln n``. Plain autodiff of this value gives MINE's biased minibatch
  gradient; see :func:`mine_loss` for the moving-average correction.

  Args:
    t_joint: statistics-network outputs on samples of the joint ``(x_i, y_i)``; any shape,
      every element is one sample (``[N]`` or ``[N, 1]``), at least one.
    t_marginal: outputs on samples of the product of marginals (e.g. ``(x_i, y_perm(i))``);
      any shape and number of samples, at least one.

  Returns:
    Scalar float32 (float64 for float64 input under ``jax_enable_x64``).

  >>> round(float(mine_lower_bound(jnp.array([1.0, 3.0]), jnp.array([0.0, 0.0]))), 4)
  2.0
  """
  t_joint = _check_scores(t_joint, "t_joint")
  t_marginal = _check_scores(t_marginal, "t_marginal")
  dtype = jnp.promote_types(t_joint.dtype, t_marginal.dtype)
  return _dv_bound(t_joint.astype(dtype), t_marginal.astype(dtype))


def _check_decay(decay: Any) -> float:
  d = _checks.check_float(decay, "decay")
  if not 0.0 <= d < 1.0:
    raise ValueError(f"`decay` must be in [0, 1), got {decay!r}.")
  return d


@functools.partial(jax.jit, static_argnames=("decay",))
def _mine_loss(t_joint, t_marginal, ema, *, decay):
  log_mean = _log_mean_exp(t_marginal)  # ln mean(e^T), stable
  batch_mean = lax.stop_gradient(jnp.exp(log_mean))
  if ema is None:
    new_ema = batch_mean
  else:
    ema = lax.stop_gradient(ema.astype(batch_mean.dtype))
    new_ema = decay * ema + (1 - decay) * batch_mean
    # Out of contract (traced only; concrete values are refused): NaN, loss included.
    new_ema = jnp.where((ema > 0) & jnp.isfinite(ema), new_ema, jnp.nan)
  # mean(e^T) / ema_new, written as mean(exp(T - ln ema_new)) so that it does not overflow
  # before the division; its value is replaced by ln mean(e^T), its gradient kept.
  surrogate = jnp.mean(jnp.exp(t_marginal - lax.stop_gradient(jnp.log(new_ema))))
  second = lax.stop_gradient(log_mean) + surrogate - lax.stop_gradient(surrogate)
  return second - jnp.mean(t_joint), new_ema


def mine_loss(
    t_joint: ArrayLike,
    t_marginal: ArrayLike,
    *,
    ema: ArrayLike | None = None,
    decay: float = 0.99,
) -> tuple[jax.Array, jax.Array]:
  """MINE's loss ``-DV`` with the paper's bias-corrected gradient; returns the updated EMA.

  The value is ``-mine_lower_bound(t_joint, t_marginal)``. The gradient is that of the
  corrected estimator (Belghazi et al. 2018, section 3.2)::

    grad = -(mean(grad T_joint) - mean(grad(T_marginal) e^T_marginal) / ema_new)

  where ``ema_new = decay * ema + (1 - decay) * mean(exp(t_marginal))`` is a moving average of
  ``E[e^T]`` over minibatches, treated as a constant (``stop_gradient``). Plain autodiff of
  the bound would divide by this minibatch's ``mean(e^T)`` instead, which is biased. The
  first call passes ``ema=None``: the average starts at the minibatch mean, and that step's
  gradient equals the plain one. The state is explicit: thread ``new_ema`` into the next
  call (e.g. keep it next to the optimiser state).

  Implemented with ``stop_gradient``: ``second = sg(ln mean e^T) + S - sg(S)`` with
  ``S = mean(e^T) / sg(ema_new)``, whose value is ``ln mean e^T`` and gradient ``grad S``.
  The EMA is kept in linear space, so it overflows float32 only once ``mean(e^T)`` does
  (``T`` around 88), by which point training has diverged anyway.

  Args:
    t_joint: statistics-network outputs on joint samples; any shape, one sample per element.
    t_marginal: outputs on product-of-marginals samples; any shape, one sample per element.
    ema: the moving average returned by the previous call (a scalar, finite and ``> 0``),
      or ``None`` on the first call. No gradient flows into it. A concrete value out of
      range raises ``ValueError``; a traced one makes the loss and ``new_ema`` NaN.
    decay: weight of the old average, in ``[0, 1)``; ``0`` gives the plain gradient.

  Returns:
    ``(loss, new_ema)``: scalar loss (minimise it), and the scalar updated moving average of
    ``mean(exp(t_marginal))`` (no gradient).

  Raises:
    ValueError: for empty scores, ``decay`` outside ``[0, 1)``, a non-scalar ``ema``, or a
      concrete ``ema`` that is not finite and ``> 0``. TypeError: for non-floating scores,
      or a ``decay`` that is not a Python number (a tracer included).

  >>> loss, ema = mine_loss(jnp.array([1.0, 3.0]), jnp.array([0.0, 0.0]))
  >>> round(float(loss), 4), round(float(ema), 4)
  (-2.0, 1.0)
  >>> loss, ema = mine_loss(jnp.array([1.0, 3.0]), jnp.array([1.0, 1.0]), ema=ema, decay=0.5)
  >>> round(float(loss), 4), round(float(ema), 4)  # loss is still -DV; ema = (1 + e) / 2
  (-1.0, 1.8591)
  """
  t_joint = _check_scores(t_joint, "t_joint")
  t_marginal = _check_scores(t_marginal, "t_marginal")
  decay = _check_decay(decay)
  dtype = jnp.promote_types(t_joint.dtype, t_marginal.dtype)
  if ema is not None:
    ema = _checks.array(ema)
    if tuple(ema.shape) != ():
      raise ValueError(f"`ema` must be a scalar or None, got shape {tuple(ema.shape)}.")
    ema = ema.astype(_checks.compute_dtype(ema, "ema", allow_int=False))
    value = _checks.concrete_value(ema)
    if value is not None and not (np.isfinite(value) and value > 0):
      raise ValueError(f"`ema` must be finite and > 0 (the `new_ema` of the previous call), "
                       f"got {float(value)!r}.")
  return _mine_loss(t_joint.astype(dtype), t_marginal.astype(dtype), ema, decay=decay)
