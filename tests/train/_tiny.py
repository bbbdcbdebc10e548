"""A tiny training problem for the jaxvision.train tests, importable and runnable as a script.

The task: a 2-layer MLP with BatchNorm (so there are batch statistics) and dropout (so the
step key matters) classifying 64 synthetic 4-d points into 3 classes. The data pipeline is a
plain grain pipeline (shuffle, repeat, batch) with a checkpointable iterator.

Run as ``python -m tests.train._tiny <command> ...`` from the repository root; the tests
launch it in subprocesses to get fresh JAX runtimes (simulated devices, several processes,
SIGKILL):

* ``train WORKDIR``: ``train_and_evaluate`` on the tiny task, then final params and batch
  stats to ``WORKDIR/final_p<process>.npz``. Test hooks: ``--step-sleep`` slows every batch;
  ``--slow-save-step K`` makes the save of step ``K`` write ``WORKDIR/saving_K`` and hang
  inside the checkpoint write (the test SIGKILLs it there); ``--coordinator``,
  ``--num-processes``, ``--process-id`` run it as one process of a multi-process job.
  It trains on all the devices it sees (set ``XLA_FLAGS`` to simulate several).
"""

from __future__ import annotations

import argparse
import os
import sys
import time

NUM_EXAMPLES = 64
DIM = 4
NUM_CLASSES = 3


def make_data(seed: int = 0):
  import numpy as np
  rng = np.random.default_rng(seed)
  x = rng.normal(size=(NUM_EXAMPLES, DIM)).astype(np.float32)
  w = rng.normal(size=(DIM, NUM_CLASSES)).astype(np.float32)
  y = np.argmax(x @ w, axis=1).astype(np.int32)
  return x, y


def make_task(*, step_sleep: float = 0.0, learning_rate: float = 0.1):
  """The tiny Task; batches are this process's slice of each global batch."""
  import flax.linen as nn
  import grain
  import jax
  import jax.numpy as jnp
  import numpy as np
  import optax

  from jaxvision.train import Task

  class MLP(nn.Module):
    hidden: int = 8

    @nn.compact
    def __call__(self, x, *, train: bool):
      x = nn.Dense(self.hidden)(x)
      x = nn.BatchNorm(use_running_average=not train, momentum=0.9)(x)
      x = nn.relu(x)
      x = nn.Dropout(0.25, deterministic=not train)(x)
      return nn.Dense(NUM_CLASSES)(x)

  model = MLP()
  x, y = make_data()

  def init(rng):
    variables = model.init(rng, jnp.zeros((1, DIM)), train=False)
    return variables["params"], variables["batch_stats"]

  def loss_fn(params, batch_stats, batch, rng):
    logits, updates = model.apply({"params": params, "batch_stats": batch_stats}, batch["x"],
                                  train=True, rngs={"dropout": rng}, mutable=["batch_stats"])
    loss = optax.softmax_cross_entropy_with_integer_labels(logits, batch["y"]).mean()
    accuracy = jnp.mean(jnp.argmax(logits, -1) == batch["y"])
    return loss, ({"accuracy": accuracy}, updates["batch_stats"])

  def train_iter(seed, batch_size):
    p, n = jax.process_index(), jax.process_count()
    records = [{"x": x[i], "y": y[i]} for i in range(NUM_EXAMPLES)]

    def local_slice(batch):
      if step_sleep:
        time.sleep(step_sleep)
      return {k: v[p * batch_size:(p + 1) * batch_size] for k, v in batch.items()}

    ds = (grain.MapDataset.source(records).seed(seed).shuffle().repeat()
          .batch(batch_size * n, drop_remainder=True).map(local_slice))
    # With a sleep, one reader thread and a one-batch buffer make the sleep slow the steps.
    options = grain.ReadOptions(num_threads=1, prefetch_buffer_size=1) if step_sleep else None
    return iter(ds.to_iter_dataset(options) if options else ds.to_iter_dataset())

  def evaluate(state):
    logits = model.apply({"params": state.params, "batch_stats": state.batch_stats}, x,
                         train=False)
    return {"accuracy": float(np.mean(np.argmax(np.asarray(logits), -1) == y))}

  return Task(init=init, loss_fn=loss_fn, optimizer=optax.sgd(learning_rate, momentum=0.9),
              train_iter=train_iter, evaluate=evaluate)


def flat_arrays(state) -> dict:
  """``{"params/Dense_0/kernel": array, ...}`` of a state's params and batch stats."""
  import jax
  import numpy as np
  out = {}
  for name in ("params", "batch_stats"):
    for path, leaf in jax.tree_util.tree_leaves_with_path(getattr(state, name)):
      out[name + jax.tree_util.keystr(path)] = np.asarray(leaf)
  return out


def _slow_save_hook(step: int, workdir: str) -> None:
  """Makes the checkpoint write of ``step`` announce itself and hang (to be SIGKILLed)."""
  import grain

  handler = grain.checkpoint.CheckpointHandler
  original = handler.save

  def save(self, directory, item=None, args=None):
    original(self, directory, item=item, args=args)
    if os.path.basename(os.path.dirname(os.fspath(directory))).startswith(f"{step}."):
      with open(os.path.join(workdir, f"saving_{step}"), "w") as f:
        f.write(os.fspath(directory))
      time.sleep(120)

  handler.save = save


def _train(args) -> None:
  import jax
  if args.num_processes > 1:
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    jax.distributed.initialize(coordinator_address=args.coordinator,
                               num_processes=args.num_processes, process_id=args.process_id)
  import numpy as np

  from jaxvision.train import TrainConfig, train_and_evaluate

  if args.slow_save_step is not None:
    _slow_save_hook(args.slow_save_step, args.workdir)
  config = TrainConfig(num_steps=args.num_steps, batch_size=args.batch_size, seed=args.seed,
                       checkpoint_every=args.checkpoint_every, keep_checkpoints=args.keep,
                       log_every=args.log_every, eval_every=args.eval_every, progress=False)
  out = train_and_evaluate(config, args.workdir, task=make_task(step_sleep=args.step_sleep))
  np.savez(os.path.join(args.workdir, f"final_p{jax.process_index()}.npz"),
           **flat_arrays(out.state))
  if args.num_processes > 1:
    jax.distributed.shutdown()


def main(argv=None) -> None:
  parser = argparse.ArgumentParser(description=__doc__)
  sub = parser.add_subparsers(dest="command", required=True)
  train = sub.add_parser("train")
  train.add_argument("workdir")
  train.add_argument("--num-steps", type=int, default=24)
  train.add_argument("--batch-size", type=int, default=8)
  train.add_argument("--seed", type=int, default=0)
  train.add_argument("--checkpoint-every", type=int, default=4)
  train.add_argument("--keep", type=int, default=3)
  train.add_argument("--log-every", type=int, default=1)
  train.add_argument("--eval-every", type=int, default=0)
  train.add_argument("--step-sleep", type=float, default=0.0)
  train.add_argument("--slow-save-step", type=int, default=None)
  train.add_argument("--coordinator", default=None)
  train.add_argument("--num-processes", type=int, default=1)
  train.add_argument("--process-id", type=int, default=0)
  args = parser.parse_args(argv)
  {"train": _train}[args.command](args)


if __name__ == "__main__":
  sys.exit(main())
