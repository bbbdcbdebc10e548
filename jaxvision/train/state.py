"""The train state: one pytree holding everything a training run needs to continue.

``TrainState`` is a ``flax.struct.dataclass`` with five array fields — ``step``, ``params``,
``batch_stats`` (an empty dict for models without batch statistics), ``opt_state`` and
``rng`` — plus the optax optimizer ``tx`` as a static (non-pytree) field. Because it is a
plain pytree it can be jitted, donated, sharded on a mesh and checkpointed with orbax as is.

Randomness. ``rng`` is the *raw* key data (``uint32[2]`` for the default threefry keys, what
``jax.random.key_data`` returns), so orbax stores it like any other array. It never changes
during training: the key of step ``t`` is ``fold_in(key, t)`` (:func:`step_rng`), a pure
function of the seed and the step. A run resumed from a checkpoint at step ``t`` therefore
draws exactly the keys the uninterrupted run drew, and under ``jit`` the random bits depend on
the global array shapes only, not on how many devices the batch is split over.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import optax
from flax import struct

__all__ = ["TrainState", "step_rng"]

PyTree = Any


def _as_key_data(rng: Any) -> jax.Array:
  """Raw ``uint32`` key data of a typed key (``jax.random.key``) or of a raw key."""
  if isinstance(rng, jax.Array) and jnp.issubdtype(rng.dtype, jax.dtypes.prng_key):
    if rng.shape != ():
      raise ValueError(f"`rng` must be a single key, got a key array of shape {rng.shape}.")
    return jax.random.key_data(rng)
  arr = jnp.asarray(rng)
  if arr.dtype != jnp.uint32 or arr.ndim != 1:
    raise TypeError("`rng` must be a typed key (jax.random.key) or raw uint32 key data "
                    f"(jax.random.PRNGKey), got dtype {arr.dtype} and shape {arr.shape}.")
  return arr


@struct.dataclass
class TrainState:
  """Parameters, batch statistics, optimizer state, step counter and PRNG key of a run.

  Build it with :meth:`create`; advance it with :meth:`apply_gradients`.

  Attributes:
    step: ``int32[]`` number of optimizer updates applied so far.
    params: the model parameters (any pytree of arrays).
    batch_stats: non-trainable state updated by the forward pass (BatchNorm statistics);
      ``{}`` when the model has none.
    opt_state: ``tx.init(params)``.
    rng: raw key data of the run's base key; see :func:`step_rng`.
    tx: the optax optimizer (static: not part of the pytree, not checkpointed).

  >>> import optax
  >>> state = TrainState.create(params={"w": jnp.ones(2)}, tx=optax.sgd(0.5),
  ...                           rng=jax.random.key(0))
  >>> state = state.apply_gradients({"w": jnp.array([1.0, -1.0])})
  >>> int(state.step), state.params["w"].tolist()
  (1, [0.5, 1.5])
  """

  step: jax.Array
  params: PyTree
  batch_stats: PyTree
  opt_state: PyTree
  rng: jax.Array
  tx: optax.GradientTransformation = struct.field(pytree_node=False)

  @classmethod
  def create(cls, *, params: PyTree, tx: optax.GradientTransformation, rng: Any,
             batch_stats: PyTree | None = None) -> "TrainState":
    """A state at step 0 with ``opt_state = tx.init(params)``.

    Args:
      params: the initial parameters.
      tx: an optax ``GradientTransformation``.
      rng: the run's base key, typed (``jax.random.key(seed)``) or raw
        (``jax.random.PRNGKey(seed)``); stored as raw key data.
      batch_stats: initial batch statistics; ``None`` means ``{}``.

    Returns:
      A ``TrainState`` with ``step == 0``.
    """
    if not (hasattr(tx, "init") and hasattr(tx, "update")):
      raise TypeError(f"`tx` must be an optax GradientTransformation, got {type(tx).__name__}.")
    return cls(step=jnp.zeros((), jnp.int32), params=params,
               batch_stats={} if batch_stats is None else batch_stats,
               opt_state=tx.init(params), rng=_as_key_data(rng), tx=tx)

  def apply_gradients(self, grads: PyTree, *, batch_stats: PyTree | None = None
                      ) -> "TrainState":
    """One optimizer update: ``params <- params + tx.update(grads)``, ``step <- step + 1``.

    Args:
      grads: gradients with the structure of ``params``.
      batch_stats: the new batch statistics; ``None`` keeps the current ones.

    Returns:
      The updated state (a new object; ``self`` is unchanged).
    """
    updates, opt_state = self.tx.update(grads, self.opt_state, self.params)
    params = optax.apply_updates(self.params, updates)
    return self.replace(step=self.step + 1, params=params, opt_state=opt_state,
                        batch_stats=self.batch_stats if batch_stats is None else batch_stats)


def step_rng(state: TrainState) -> jax.Array:
  """The typed PRNG key of the current step: ``fold_in(key(state.rng), state.step)``.

  Args:
    state: a ``TrainState``.

  Returns:
    A typed key (``jax.random.key``-style), the same for a given seed and step however the
    run was interrupted or sharded.

  >>> import optax
  >>> s = TrainState.create(params={}, tx=optax.sgd(0.1), rng=jax.random.key(3))
  >>> k0 = step_rng(s)
  >>> bool((jax.random.key_data(k0) ==
  ...       jax.random.key_data(jax.random.fold_in(jax.random.key(3), 0))).all())
  True
  """
  return jax.random.fold_in(jax.random.wrap_key_data(state.rng), state.step)
