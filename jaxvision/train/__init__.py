"""jaxvision.train: the one training loop every experiment uses.

* :mod:`~jaxvision.train.state`: ``TrainState`` (params, batch stats, optimizer state, step,
  PRNG key as one pytree) and ``step_rng``.
* :mod:`~jaxvision.train.sharding`: the ``("data",)`` mesh, batch/replicated shardings and
  ``shard_batch`` (multi-host aware).
* :mod:`~jaxvision.train.checkpoint`: ``Checkpointer``, orbax checkpoints of the state and the
  grain iterator position.
* :mod:`~jaxvision.train.loop`: ``TrainConfig``, ``Task``, ``train_and_evaluate``.

It imports no model: a model comes in through a ``Task``.
"""

from jaxvision.train.checkpoint import Checkpointer, abstract_like
from jaxvision.train.distributed import initialize_distributed, is_main_process
from jaxvision.train.lock import WorkdirLock, WorkdirLockedError
from jaxvision.train.loop import (Task, TrainConfig, TrainResult, init_train_state,
                                  make_train_step, train_and_evaluate, write_results)
from jaxvision.train.sharding import (DATA_AXIS, batch_sharding, data_mesh, replicate,
                                      replicated_sharding, shard_batch)
from jaxvision.train.state import TrainState, step_rng

__all__ = [
    "TrainState", "step_rng",
    "DATA_AXIS", "data_mesh", "replicated_sharding", "batch_sharding", "shard_batch",
    "replicate",
    "Checkpointer", "abstract_like",
    "TrainConfig", "Task", "TrainResult", "init_train_state", "make_train_step",
    "train_and_evaluate", "write_results",
    "initialize_distributed", "is_main_process",
    "WorkdirLock", "WorkdirLockedError",
]
