"""Pallas kernel for the IIC objective's joint distribution, and the loss with a custom VJP.

Invariant Information Clustering (Ji, Henriques and Vedaldi, ICCV 2019) maximises the mutual
information between the cluster assignments of two views of the same images. With ``z`` and
``z_bar`` the ``[B, C]`` softmax outputs for the two views:

* ``S = sum_b z_b z_bar_b^T`` (``[C, C]``), computed by the kernel below;
* ``P = (S + S^T) / 2``, then ``P <- P / sum(P)``: the symmetric joint distribution;
* ``P_i = sum_j P_ij`` and ``P_j = sum_i P_ij``: the marginals, from the unclamped ``P``;
* ``L = -sum_ij P'_ij (log P'_ij - alpha log P'_i - alpha log P'_j)`` where ``X' =
  max(X, eps)`` elementwise, for ``P``, ``P_i`` and ``P_j`` alike. This is the clamping rule
  of ``IID_loss`` in the authors' code (xu-ji/IIC), and so is the default
  ``eps = sys.float_info.epsilon`` (about 2.2e-16, representable in float32). With
  ``alpha = 1``, ``L = -I(z; z_bar)``.

The kernel tiles the ``[C, C]`` output over a grid ``(batch chunks, C / bc, C / bc)``. Each
program owns one ``[bc, bc]`` tile of one chunk of ``tiles_per_program * block_batch`` rows
and accumulates ``z_tile^T @ z_bar_tile`` over the chunk's batch tiles in float32 in a
``fori_loop``; the chunks' partial sums are added afterwards in XLA. No two programs write
the same output block, so the grid is safe to run in parallel (as GPU grids do) as well as
sequentially. ``B`` and ``C`` are padded with zeros to block multiples: zero rows add exactly
nothing to ``S`` (that is the tail mask) and zero classes are sliced off.

Status: as for every kernel here (see the ``kernels`` package docstring): tested in interpret
mode on CPU, lowered through Pallas' Triton backend on GPU, not yet run on a GPU. Blocks are
powers of two and at least 16 by default (Triton's smallest ``dot``); float32 inputs use an
IEEE-precision (not TF32) ``dot``.
"""

from __future__ import annotations

import dataclasses
import functools
import sys

import jax
import jax.numpy as jnp
from jax import lax
from jax.experimental import pallas as pl
from jax.experimental.pallas import triton as pltriton
from jax.typing import ArrayLike

from jaxvision import _checks  # NumPy + JAX only: kernels stay leaves

__all__ = ["EPS", "IICConfig", "joint_probability", "iic_loss"]

EPS = sys.float_info.epsilon  # xu-ji/IIC's clamp, about 2.2e-16

_MIN_DOT = 16  # Triton's smallest dot dimension; blocks are not shrunk below it


@dataclasses.dataclass(frozen=True)
class IICConfig:
  """Tuning parameters of the joint-distribution kernel.

  Attributes:
    block_batch: batch rows per accumulation step; a power of two (use >= 16 on GPU).
    block_classes: output tile is ``[block_classes, block_classes]``; a power of two (>= 16
      on GPU).
    tiles_per_program: batch tiles one program accumulates before writing its partial sum;
      a positive int. More means fewer partial ``[C, C]`` sums to add, less parallelism.
    num_warps: Triton warps per program of the compiled GPU kernel; a power of two <= 32.

  The wrapper shrinks ``block_batch`` and ``block_classes`` towards the problem size (but
  not below 16, or the configured value if that is smaller).
  """

  block_batch: int = 128
  block_classes: int = 64
  tiles_per_program: int = 8
  num_warps: int = 4

  def __post_init__(self):
    _checks.check_power_of_two(self.block_batch, "block_batch")
    _checks.check_power_of_two(self.block_classes, "block_classes")
    tpp = self.tiles_per_program
    if isinstance(tpp, bool) or not isinstance(tpp, int) or tpp <= 0:
      raise ValueError(f"`tiles_per_program` must be a positive int, got {tpp!r}.")
    _checks.check_power_of_two(self.num_warps, "num_warps", maximum=32)


def _fit_block(block: int, size: int) -> int:
  """``block`` shrunk to the next power of two >= ``size``, but not below 16."""
  return min(block, max(_MIN_DOT, 1 << max(size - 1, 0).bit_length()))


def _joint_kernel(z_ref, zb_ref, out_ref, *, block_batch: int, tiles: int):
  """``z_ref``, ``zb_ref [tiles * bb, bc]`` -> ``out_ref [bc, bc] = z^T @ z_bar`` in float32."""
  bc = out_ref.shape[-1]

  def step(t, acc):
    rows = pl.ds(pl.multiple_of(t * block_batch, block_batch), block_batch)
    a = z_ref[rows, :].astype(jnp.float32)
    b = zb_ref[rows, :].astype(jnp.float32)
    return acc + lax.dot_general(a, b, (((0,), (0,)), ((), ())),
                                 preferred_element_type=jnp.float32)

  out_ref[...] = lax.fori_loop(0, tiles, step, jnp.zeros((bc, bc), jnp.float32))


@functools.partial(
    jax.jit, static_argnames=("block_batch", "block_classes", "tiles_per_program", "num_warps",
                              "interpret"))
def _joint_counts(z, z_bar, *, block_batch, block_classes, tiles_per_program, num_warps,
                  interpret):
  """``S = z^T z_bar`` (``[C, C]`` float32) for ``z``, ``z_bar [B, C]``, B, C > 0."""
  b, c = z.shape
  bb, bc = _fit_block(block_batch, b), _fit_block(block_classes, c)
  num_tiles = -(-b // bb)
  chunks = -(-num_tiles // tiles_per_program)
  tiles = -(-num_tiles // chunks)  # balance the chunks: at most chunks - 1 spare tiles
  b_pad, c_pad = chunks * tiles * bb, -(-c // bc) * bc
  pad = ((0, b_pad - b), (0, c_pad - c))
  z, z_bar = jnp.pad(z, pad), jnp.pad(z_bar, pad)
  partial = pl.pallas_call(
      functools.partial(_joint_kernel, block_batch=bb, tiles=tiles),
      out_shape=jax.ShapeDtypeStruct((chunks, c_pad, c_pad), jnp.float32),
      grid=(chunks, c_pad // bc, c_pad // bc),
      in_specs=[
          pl.BlockSpec((tiles * bb, bc), lambda k, i, j: (k, i)),
          pl.BlockSpec((tiles * bb, bc), lambda k, i, j: (k, j)),
      ],
      out_specs=pl.BlockSpec((pl.squeezed, bc, bc), lambda k, i, j: (k, i, j)),
      interpret=interpret,
      compiler_params=pltriton.CompilerParams(num_warps=num_warps),
      name="iic_joint",
  )(z, z_bar)
  return jnp.sum(partial, axis=0)[:c, :c]


def _check_pair(z, z_bar):
  z, z_bar = jnp.asarray(z), jnp.asarray(z_bar)
  for name, arr in (("z", z), ("z_bar", z_bar)):
    if arr.ndim != 2 or arr.shape[0] == 0 or arr.shape[1] == 0:
      raise ValueError(f"`{name}` must have shape [B, C] with B, C > 0, got "
                       f"{tuple(arr.shape)}.")
    if not jnp.issubdtype(arr.dtype, jnp.floating):
      raise TypeError(f"`{name}` must be a floating-point array, got dtype {arr.dtype}.")
  if z.shape != z_bar.shape:
    raise ValueError(f"`z` and `z_bar` must have the same shape, got {tuple(z.shape)} and "
                     f"{tuple(z_bar.shape)}.")
  return z, z_bar


def _kernel_kwargs(config, interpret):
  if not isinstance(config, IICConfig):
    raise TypeError(f"`config` must be an IICConfig, got {type(config).__name__}.")
  return dict(block_batch=config.block_batch, block_classes=config.block_classes,
              tiles_per_program=config.tiles_per_program, num_warps=config.num_warps,
              interpret=bool(interpret))


def _normalise(s):
  p = (s + s.T) / 2
  return p / jnp.sum(p)


_jit_normalise = jax.jit(_normalise)


def joint_probability(
    z: ArrayLike,
    z_bar: ArrayLike,
    *,
    config: IICConfig = IICConfig(),
    interpret: bool = False,
) -> jax.Array:
  """IIC's symmetric joint distribution ``P = sym(sum_b z_b z_bar_b^T) / total``, via Pallas.

  Not differentiable itself (``jax.grad`` cannot see through the kernel): differentiate
  :func:`iic_loss`, which has a custom VJP.

  Args:
    z: ``[B, C]`` softmax outputs for the first view (any float dtype; float32 accumulation).
    z_bar: ``[B, C]`` softmax outputs for the second view.
    config: block sizes, see :class:`IICConfig`.
    interpret: run the kernel with the Pallas interpreter (CPU, tests).

  Returns:
    ``[C, C]`` float32, symmetric, summing to 1.

  >>> z = jnp.array([[1.0, 0.0], [0.5, 0.5]])
  >>> joint_probability(z, z, interpret=True).tolist()
  [[0.625, 0.125], [0.125, 0.125]]
  """
  z, z_bar = _check_pair(z, z_bar)
  return _jit_normalise(_joint_counts(z, z_bar, **_kernel_kwargs(config, interpret)))


def _loss_terms(s, alpha, eps):
  """The loss from ``S`` and what its backward pass needs."""
  p = _normalise(s)
  p_i, p_j = jnp.sum(p, axis=1), jnp.sum(p, axis=0)
  pc, p_ic, p_jc = jnp.maximum(p, eps), jnp.maximum(p_i, eps), jnp.maximum(p_j, eps)
  log_p, log_i, log_j = jnp.log(pc), jnp.log(p_ic), jnp.log(p_jc)
  loss = -jnp.sum(pc * (log_p - alpha * log_i[:, None] - alpha * log_j[None, :]))
  return loss, (p, p_i, p_j, pc, p_ic, p_jc, log_p, log_i, log_j)


def _grad_counts(s, alpha, eps):
  """``G = dL/dS`` (``[C, C]``), derived by hand through the clamps, marginals, normalisation
  and symmetrisation (see :func:`iic_loss`)."""
  _, (p, p_i, p_j, pc, p_ic, p_jc, log_p, log_i, log_j) = _loss_terms(s, alpha, eps)
  g_pc = alpha * log_i[:, None] + alpha * log_j[None, :] - log_p - 1.0  # dL/dP'_ij
  g_ic = alpha * jnp.sum(pc, axis=1) / p_ic  # dL/dP'_i
  g_jc = alpha * jnp.sum(pc, axis=0) / p_jc  # dL/dP'_j
  # A clamp passes the gradient where its input is at least eps (the reference code's
  # masked assignment leaves those entries alone); each P_ij feeds P_i and P_j once.
  g_p = (jnp.where(p >= eps, g_pc, 0.0) + jnp.where(p_i >= eps, g_ic, 0.0)[:, None]
         + jnp.where(p_j >= eps, g_jc, 0.0)[None, :])
  g_a = (g_p - jnp.sum(g_p * p)) / jnp.sum(s)  # P = A / sum(A), and sum(A) = sum(S)
  return (g_a + g_a.T) / 2  # A = (S + S^T) / 2


@jax.jit
def _loss_from_counts(s, alpha, eps):
  return _loss_terms(s, alpha, eps)[0]


@jax.jit
def _input_grads(z, z_bar, s, g, alpha, eps):
  """``(dL/dz, dL/dz_bar) = (z_bar G^T, z G)`` scaled by the cotangent ``g``."""
  grad_s = g * _grad_counts(s, alpha, eps)
  hi = lax.Precision.HIGHEST
  dz = jnp.dot(z_bar.astype(jnp.float32), grad_s.T, precision=hi)
  dz_bar = jnp.dot(z.astype(jnp.float32), grad_s, precision=hi)
  return dz.astype(z.dtype), dz_bar.astype(z_bar.dtype)


@functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3, 4))
def _iic_loss(z, z_bar, alpha, eps, kernel_kwargs):
  return _loss_from_counts(_joint_counts(z, z_bar, **dict(kernel_kwargs)), alpha, eps)


def _iic_loss_fwd(z, z_bar, alpha, eps, kernel_kwargs):
  s = _joint_counts(z, z_bar, **dict(kernel_kwargs))
  return _loss_from_counts(s, alpha, eps), (z, z_bar, s)


def _iic_loss_bwd(alpha, eps, kernel_kwargs, residuals, g):
  del kernel_kwargs
  return _input_grads(*residuals, g, alpha, eps)


_iic_loss.defvjp(_iic_loss_fwd, _iic_loss_bwd)


def iic_loss(
    z: ArrayLike,
    z_bar: ArrayLike,
    *,
    alpha: float = 1.0,
    eps: float = EPS,
    config: IICConfig = IICConfig(),
    interpret: bool = False,
) -> jax.Array:
  """The IIC loss ``-sum_ij P_ij (log P_ij - alpha log P_i - alpha log P_j)``, differentiable.

  ``P`` is :func:`joint_probability`; ``P_i``, ``P_j`` are its row and column sums; then
  ``P``, ``P_i`` and ``P_j`` are each clamped with ``max(., eps)`` before the logs (xu-ji/IIC's
  rule). With ``alpha = 1`` the loss is minus the mutual information of the two assignments.

  The custom VJP: with ``P' = max(P, eps)`` etc.,
  ``dL/dP'_ij = alpha log P'_i + alpha log P'_j - log P'_ij - 1``,
  ``dL/dP'_i = alpha sum_j P'_ij / P'_i`` (likewise ``P'_j``); through the clamps (gradient
  passes where the input is ``>= eps``) and the marginals,
  ``G_P = [P >= eps] dL/dP' + [P_i >= eps] dL/dP'_i + [P_j >= eps] dL/dP'_j``; through
  ``P = A / sum(A)``: ``G_A = (G_P - sum(G_P * P)) / sum(A)``; through
  ``A = (S + S^T) / 2``: ``G = (G_A + G_A^T) / 2``; and as ``S = z^T z_bar``,
  ``dL/dz = z_bar G^T`` and ``dL/dz_bar = z G`` (plain XLA matmuls).

  Args:
    z: ``[B, C]`` softmax outputs for the first view (any float dtype; float32 accumulation).
    z_bar: ``[B, C]`` softmax outputs for the second view.
    alpha: weight of the marginal-entropy terms (the paper's lambda; 1 = mutual information);
      a Python number (static, like ``eps``).
    eps: the clamp applied to ``P``, ``P_i`` and ``P_j`` before the logs; > 0.
    config: block sizes, see :class:`IICConfig`.
    interpret: run the kernel with the Pallas interpreter (CPU, tests).

  Returns:
    Scalar float32 loss. Gradients with respect to ``z`` and ``z_bar`` have their dtypes.

  >>> z = jnp.array([[1.0, 0.0], [0.0, 1.0]])
  >>> round(float(iic_loss(z, z, interpret=True)), 4)  # -ln 2: one bit of shared information
  -0.6931
  """
  z, z_bar = _check_pair(z, z_bar)
  try:
    alpha, eps = float(alpha), float(eps)
  except (TypeError, ValueError):
    raise TypeError(f"`alpha` and `eps` must be Python numbers, got {alpha!r}, {eps!r}.") \
        from None
  if not eps > 0.0:
    raise ValueError(f"`eps` must be > 0, got {eps!r}.")
  kwargs = tuple(sorted(_kernel_kwargs(config, interpret).items()))
  return _iic_loss(z, z_bar, alpha, eps, kwargs)
