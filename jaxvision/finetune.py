"""Transfer learning: reuse a trained network's trunk under a new head, frozen or not.

    labels = partition_params(params, head=("classifier",))        # "trunk" / "head" per leaf
    tx = frozen_trunk_optimizer(labels, optax.adam(1e-3))           # trunk: optax.set_to_zero
    tx = discriminative_optimizer(labels, head=optax.adam(1e-3),
                                  trunk=optax.adam(1e-4))          # a lower trunk LR
    variables = transplant_trunk(old_variables, new_variables, head=("classifier",))

With :func:`frozen_trunk_optimizer` the trunk's updates are exactly zero, so its parameters
after training are bit-identical to the loaded ones (tested); run the trunk's BatchNorm in
inference mode too (``classification_task(..., update_batch_stats=False)``), as a frozen
feature extractor should — otherwise its running statistics drift to the new data.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import flax
import jax
import numpy as np
import optax

__all__ = ["partition_params", "frozen_trunk_optimizer", "discriminative_optimizer",
           "transplant_trunk", "few_shot_subset", "TRUNK", "HEAD"]

TRUNK, HEAD = "trunk", "head"


def partition_params(params: Mapping[str, Any], head: Sequence[str] = ("classifier",)) -> Any:
  """A pytree like ``params`` whose leaves are ``"head"`` for the top-level modules named in
  ``head`` and ``"trunk"`` elsewhere (the labels of ``optax.multi_transform``)."""
  params = flax.core.unfreeze(params) if isinstance(params, flax.core.FrozenDict) else params
  missing = [h for h in head if h not in params]
  if missing:
    raise ValueError(f"`head` names {missing} are not top-level modules of the params "
                     f"(which has {sorted(params)}).")
  return {k: jax.tree.map(lambda _, k=k: HEAD if k in head else TRUNK, v)
          for k, v in params.items()}


def frozen_trunk_optimizer(labels: Any, head: optax.GradientTransformation
                           ) -> optax.GradientTransformation:
  """``head`` on the head's parameters, zero updates (``optax.set_to_zero``) on the trunk's."""
  return optax.multi_transform({HEAD: head, TRUNK: optax.set_to_zero()}, labels)


def discriminative_optimizer(labels: Any, *, head: optax.GradientTransformation,
                             trunk: optax.GradientTransformation
                             ) -> optax.GradientTransformation:
  """Separate optimizers (typically a lower learning rate on the trunk) for the two parts."""
  return optax.multi_transform({HEAD: head, TRUNK: trunk}, labels)


def transplant_trunk(source: Mapping[str, Any], target: Mapping[str, Any],
                     head: Sequence[str] = ("classifier",)) -> dict[str, Any]:
  """``target``'s variables (e.g. a fresh model with a new number of classes) with every
  collection's non-head entries replaced by ``source``'s (the trained trunk: params and
  BatchNorm statistics). Shapes must agree outside the head."""
  out = {}
  for collection, tree in target.items():
    tree = dict(flax.core.unfreeze(tree))
    src = dict(flax.core.unfreeze(source.get(collection, {})))
    for name, value in tree.items():
      if name in head:
        continue
      if name not in src:
        raise ValueError(f"the source variables have no {collection}/{name} to transplant.")
      s_shapes = jax.tree.map(np.shape, src[name])
      t_shapes = jax.tree.map(np.shape, value)
      if s_shapes != t_shapes:
        raise ValueError(f"{collection}/{name}: the source's shapes {s_shapes} differ from "
                         f"the target's {t_shapes}.")
      tree[name] = src[name]
    out[collection] = tree
  return out


def few_shot_subset(labels: Any, per_class: int, *, classes: Sequence[int] | None = None,
                    seed: int = 0) -> np.ndarray:
  """Indices of ``per_class`` examples of each class in ``classes`` (default: all present),
  drawn without replacement with ``seed``, sorted. ``ValueError`` if a class has fewer."""
  labels = np.asarray(labels)
  if isinstance(per_class, bool) or int(per_class) < 1:
    raise ValueError(f"`per_class` must be >= 1, got {per_class!r}.")
  rng = np.random.default_rng(seed)
  classes = np.unique(labels) if classes is None else list(classes)
  picks = []
  for c in classes:
    idx = np.flatnonzero(labels == c)
    if len(idx) < per_class:
      raise ValueError(f"class {c} has {len(idx)} examples, fewer than per_class="
                       f"{per_class}.")
    picks.append(rng.choice(idx, size=int(per_class), replace=False))
  return np.sort(np.concatenate(picks))
