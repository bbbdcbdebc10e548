"""Image classification: a training task for :func:`jaxvision.train.train_and_evaluate`, an
evaluator, and :class:`Classifier`, the inference path of a saved classifier.

    spec = ClassifierSpec(model="CapsNetSmall", num_classes=10, image_shape=(28, 28, 1))
    task = classification_task(spec, MnistSource("train"), optimizer=optax.adam(1e-3),
                               test_data=MnistSource("test"), shift=2,
                               loss=capsnet.losses)
    out = train_and_evaluate(TrainConfig(num_steps=2000, batch_size=128), workdir, task=task)
    clf = Classifier(spec, out.state.variables()); clf.save("capsnet.msgpack")
    Classifier.load("capsnet.msgpack").predict(images)        # classes, scores

Records are ``{"image": uint8 [H, W, C], "label": int}`` (``MnistSource``, or any
``ArraySource``); images are scaled to ``[0, 1]``. A model is any flax module called as
``model(images, train=bool)`` returning class scores ``[B, K]`` (logits, or CapsNet's
capsule lengths: the arg-max is the prediction either way), with or without BatchNorm.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Mapping

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxvision import models
from jaxvision import weights as weights_lib
from jaxvision.tasks import process_local_pipeline
from jaxvision.train import Task

__all__ = ["ClassifierSpec", "Classifier", "cross_entropy_loss", "random_shift",
           "classification_task", "evaluate_classifier", "init_classifier", "KIND",
           "ClassifierConfig", "LOSSES", "learning_rate_schedule", "make_optimizer",
           "config_loss", "forward_flops", "inference_images_per_sec"]

KIND = "classifier"

LossFn = Callable[..., Any]


@dataclasses.dataclass(frozen=True)
class ClassifierSpec:
  """What rebuilds a classifier: ``jaxvision.models.<model>(num_classes=..., **attributes)``
  on images of ``image_shape = (H, W, C)``; ``class_names`` label the outputs."""

  model: str
  num_classes: int
  image_shape: tuple[int, int, int] = (28, 28, 1)
  attributes: Mapping[str, Any] = dataclasses.field(default_factory=dict)
  class_names: tuple[str, ...] | None = None

  def __post_init__(self):
    if str(self.model) not in models.__all__:
      raise ValueError(f"`model` must name a model in jaxvision.models, got {self.model!r}.")
    if isinstance(self.num_classes, bool) or int(self.num_classes) < 2:
      raise ValueError(f"`num_classes` must be an integer >= 2, got {self.num_classes!r}.")
    shape = tuple(int(v) for v in self.image_shape)
    if len(shape) != 3 or min(shape) < 1:
      raise ValueError(f"`image_shape` must be (H, W, C) of positive ints, got "
                       f"{self.image_shape!r}.")
    object.__setattr__(self, "image_shape", shape)
    object.__setattr__(self, "attributes", dict(self.attributes))
    if self.class_names is None:
      object.__setattr__(self, "class_names", tuple(str(i) for i in range(self.num_classes)))
    elif len(self.class_names) != self.num_classes:
      raise ValueError(f"`class_names` has {len(self.class_names)} names for "
                       f"{self.num_classes} classes.")
    else:
      object.__setattr__(self, "class_names", tuple(str(n) for n in self.class_names))

  def build(self):
    """The flax module."""
    return getattr(models, self.model)(num_classes=int(self.num_classes), **self.attributes)

  def to_dict(self) -> dict[str, Any]:
    return {"kind": KIND, "model": self.model, "num_classes": int(self.num_classes),
            "image_shape": list(self.image_shape), "attributes": dict(self.attributes),
            "class_names": list(self.class_names)}

  @classmethod
  def from_dict(cls, d: Mapping[str, Any]) -> "ClassifierSpec":
    if d.get("kind") != KIND:
      raise ValueError(f"the weights describe a {d.get('kind', 'different')!r} model, not a "
                       f"classifier.")
    return cls(model=d["model"], num_classes=d["num_classes"],
               image_shape=tuple(d["image_shape"]), attributes=d.get("attributes", {}),
               class_names=tuple(d["class_names"]) if d.get("class_names") else None)


def init_classifier(spec: ClassifierSpec, rng: jax.Array) -> tuple[Any, Any]:
  """``(params, batch_stats)`` of a fresh model (``batch_stats`` ``{}`` without BatchNorm)."""
  x = jnp.zeros((1, *spec.image_shape), jnp.float32)
  variables = spec.build().init(rng, x, train=False)
  return variables["params"], variables.get("batch_stats", {})


def _as_images(images: Any, spec: ClassifierSpec) -> jax.Array:
  x = jnp.asarray(images)
  if x.ndim == 3 and spec.image_shape[-1] == 1:   # [N, H, W] greyscale
    x = x[..., None]
  if x.ndim != 4 or tuple(x.shape[1:]) != spec.image_shape:
    raise ValueError(f"`images` must be [N, {', '.join(map(str, spec.image_shape))}], got "
                     f"shape {tuple(x.shape)}.")
  if jnp.issubdtype(x.dtype, jnp.integer):
    return x.astype(jnp.float32) / 255.0
  return x.astype(jnp.float32)


def random_shift(images: jax.Array, rng: jax.Array, max_shift: int) -> jax.Array:
  """Each image translated by its own uniform integer shift in ``[-max_shift, max_shift]``
  on both axes, zero-filled (the CapsNet paper's only augmentation, 2 px)."""
  s = int(max_shift)
  if s < 0:
    raise ValueError(f"`max_shift` must be >= 0, got {max_shift!r}.")
  if s == 0:
    return images
  b, h, w, _ = images.shape
  padded = jnp.pad(images, ((0, 0), (s, s), (s, s), (0, 0)))
  offsets = jax.random.randint(rng, (b, 2), 0, 2 * s + 1)

  def crop(img, off):
    return jax.lax.dynamic_slice(img, (off[0], off[1], 0), (h, w, img.shape[-1]))

  return jax.vmap(crop)(padded, offsets)


def cross_entropy_loss(model, params, batch_stats, images, labels, rng, *,
                       label_smoothing: float = 0.0, update_batch_stats: bool = True):
  """Softmax cross-entropy of ``model(images, train=True)`` in the ``loss`` form of
  :func:`classification_task`: ``(loss, (metrics, new_batch_stats))``.
  ``update_batch_stats=False`` runs the model in inference mode (BatchNorm's running
  statistics used and kept, no dropout): a frozen feature extractor."""
  variables = {"params": params}
  if not update_batch_stats:
    if batch_stats:
      variables["batch_stats"] = batch_stats
    logits = model.apply(variables, images, train=False)
  elif batch_stats:
    variables["batch_stats"] = batch_stats
    logits, updates = model.apply(variables, images, train=True, mutable=["batch_stats"],
                                  rngs={"dropout": rng})
    batch_stats = updates["batch_stats"]
  else:
    logits = model.apply(variables, images, train=True, rngs={"dropout": rng})
  k = logits.shape[-1]
  targets = optax.smooth_labels(jax.nn.one_hot(labels, k), label_smoothing) \
      if label_smoothing else jax.nn.one_hot(labels, k)
  loss = jnp.mean(optax.softmax_cross_entropy(logits.astype(jnp.float32), targets))
  accuracy = jnp.mean((jnp.argmax(logits, -1) == labels).astype(jnp.float32))
  return loss, ({"accuracy": accuracy}, batch_stats)


def classification_task(spec: ClassifierSpec, train_data, *,
                        optimizer: optax.GradientTransformation, test_data=None,
                        loss: LossFn = cross_entropy_loss, shift: int = 0,
                        eval_batch_size: int = 500, initial_variables=None) -> Task:
  """The :class:`~jaxvision.train.Task` of a classifier.

  Args:
    spec: the model and image shape.
    train_data: a grain source of ``{"image", "label"}`` records.
    optimizer: an optax transformation (e.g. ``optax.multi_transform`` to freeze a trunk).
    test_data: evaluated with :func:`evaluate_classifier` by the loop.
    loss: ``loss(model, params, batch_stats, images, labels, rng) -> (loss, (metrics,
      batch_stats))``; :func:`cross_entropy_loss` by default (``functools.partial`` it with
      ``update_batch_stats=False`` for a frozen trunk),
      :func:`jaxvision.models.capsnet.losses` for CapsNet.
    shift: :func:`random_shift` augmentation in pixels (0: none).
    eval_batch_size: images per compiled evaluation call.
    initial_variables: start from these (fine-tuning) instead of a fresh init.
  """
  if int(shift) < 0:
    raise ValueError(f"`shift` must be >= 0, got {shift!r}.")
  if int(eval_batch_size) < 1:
    raise ValueError(f"`eval_batch_size` must be >= 1, got {eval_batch_size!r}.")
  model = spec.build()

  def init(rng):
    if initial_variables is not None:
      return initial_variables["params"], initial_variables.get("batch_stats", {})
    key = jax.random.wrap_key_data(jax.random.bits(rng, (4,), jnp.uint32), impl="rbg")
    return init_classifier(spec, key)

  def loss_fn(params, batch_stats, batch, rng):
    rng_shift, rng = jax.random.split(rng)
    images = random_shift(_as_images(batch["image"], spec), rng_shift, shift)
    return loss(model, params, batch_stats, images, batch["label"].astype(jnp.int32), rng)

  def train_iter(seed, batch_size):
    return process_local_pipeline(train_data, batch_size=batch_size, seed=seed)

  evaluate = None
  if test_data is not None:
    classifier = None

    def evaluate(state):
      nonlocal classifier
      variables = {"params": state.params}
      if state.batch_stats:
        variables["batch_stats"] = state.batch_stats
      if classifier is None:
        classifier = Classifier(spec, variables)
      classifier.variables = variables
      ev = evaluate_classifier(classifier, test_data, batch_size=eval_batch_size)
      return {"accuracy": ev["accuracy"], "error_rate": ev["error_rate"]}

  return Task(init=init, loss_fn=loss_fn, optimizer=optimizer, train_iter=train_iter,
              evaluate=evaluate)


class Classifier:
  """A trained classifier: ``predict(images) -> (classes [N], scores [N, K])`` on uint8 (0-255)
  or float (0-1) images ``[N, H, W, C]`` of the spec's shape, in compiled batches."""

  def __init__(self, spec: ClassifierSpec, variables: Mapping[str, Any], *,
               batch_size: int = 500):
    if not isinstance(spec, ClassifierSpec):
      raise TypeError(f"`spec` must be a ClassifierSpec, got {type(spec).__name__}.")
    if int(batch_size) < 1:
      raise ValueError(f"`batch_size` must be >= 1, got {batch_size!r}.")
    self.spec = spec
    self.model = spec.build()
    self.variables = dict(variables)
    self.batch_size = int(batch_size)
    self._apply = jax.jit(lambda v, x: self.model.apply(v, x, train=False))

  @classmethod
  def load(cls, path, **kwargs) -> "Classifier":
    """From a file written by :meth:`save` (or a workdir holding ``weights.msgpack``)."""
    variables, spec = weights_lib.load_weights(path)
    return cls(ClassifierSpec.from_dict(spec), variables, **kwargs)

  def save(self, path, **extra: Any):
    """Writes the variables and the spec (plus ``extra`` JSON fields) to ``path``."""
    return weights_lib.save_weights(path, self.variables, {**self.spec.to_dict(), **extra})

  def scores(self, images: Any) -> np.ndarray:
    """``[N, K]`` class scores (the model's outputs)."""
    x = _as_images(images, self.spec)
    n = x.shape[0]
    if n == 0:
      return np.zeros((0, self.spec.num_classes), np.float32)
    out = []
    for start in range(0, n, self.batch_size):
      chunk = x[start:start + self.batch_size]
      pad = self.batch_size - chunk.shape[0] if n > self.batch_size else 0
      if pad:
        chunk = jnp.pad(chunk, ((0, pad), (0, 0), (0, 0), (0, 0)))
      out.append(np.asarray(self._apply(self.variables, chunk))[:chunk.shape[0] - pad])
    return np.concatenate(out).astype(np.float32)

  def predict(self, images: Any) -> tuple[np.ndarray, np.ndarray]:
    s = self.scores(images)
    return s.argmax(-1).astype(np.int32), s


def evaluate_classifier(classifier: Classifier, data: Any, *, batch_size: int = 500
                        ) -> dict[str, Any]:
  """Accuracy, error rate, per-class accuracy and the confusion matrix (rows: truth) of
  ``classifier`` on a source of ``{"image", "label"}`` records (or a dict of arrays)."""
  arrays = data if isinstance(data, Mapping) else getattr(data, "arrays", None)
  if arrays is None:
    records = [data[i] for i in range(len(data))]
    arrays = {"image": np.stack([r["image"] for r in records]),
              "label": np.asarray([r["label"] for r in records])}
  classifier.batch_size = int(batch_size)
  labels = np.asarray(arrays["label"]).astype(np.int64)
  preds, _ = classifier.predict(arrays["image"])
  k = classifier.spec.num_classes
  confusion = np.zeros((k, k), np.int64)
  np.add.at(confusion, (labels, preds), 1)
  totals = confusion.sum(1)
  per_class = np.where(totals > 0, np.diag(confusion) / np.maximum(totals, 1), np.nan)
  accuracy = float(np.mean(preds == labels)) if len(labels) else float("nan")
  return {"accuracy": accuracy, "error_rate": 1.0 - accuracy, "num_images": int(len(labels)),
          "per_class_accuracy": [None if np.isnan(v) else float(v) for v in per_class],
          "confusion": confusion.tolist()}


# ---------------------------------------------------------------------------------------------
# Recipes: what the classification CLIs train.

LOSSES = ("cross_entropy", "capsnet")


@dataclasses.dataclass(frozen=True)
class ClassifierConfig:
  """A classification recipe on MNIST-like data (the CLIs' ``--config``).

  Attributes:
    model: a name in :mod:`jaxvision.models`; ``attributes`` its extra constructor arguments.
    loss: ``"cross_entropy"`` or ``"capsnet"`` (:func:`jaxvision.models.capsnet.losses`).
    steps / batch_size: optimizer steps and global batch.
    learning_rate / warmup_steps / final_fraction: Adam, linear warm-up then a cosine decay
      to ``final_fraction * learning_rate``.
    weight_decay: AdamW's decoupled decay (0: plain Adam).
    shift: :func:`random_shift` augmentation in pixels.
    train_images / test_images: the first N of each split (None: all).
    eval_every / checkpoint_every / log_every: as :class:`~jaxvision.train.TrainConfig`.
  """

  model: str
  attributes: Mapping[str, Any] = dataclasses.field(default_factory=dict)
  loss: str = "cross_entropy"
  steps: int = 1000
  batch_size: int = 128
  learning_rate: float = 1e-3
  warmup_steps: int = 100
  final_fraction: float = 0.0
  weight_decay: float = 0.0
  shift: int = 0
  train_images: int | None = None
  test_images: int | None = None
  eval_every: int = 0
  checkpoint_every: int = 500
  log_every: int = 100

  def __post_init__(self):
    if self.loss not in LOSSES:
      raise ValueError(f"`loss` must be one of {LOSSES}, got {self.loss!r}.")
    for name in ("steps", "batch_size"):
      if int(getattr(self, name)) < 1:
        raise ValueError(f"`{name}` must be >= 1, got {getattr(self, name)!r}.")
    if not self.learning_rate > 0:
      raise ValueError(f"`learning_rate` must be > 0, got {self.learning_rate!r}.")


def learning_rate_schedule(cfg: ClassifierConfig) -> optax.Schedule:
  """Linear warm-up to ``cfg.learning_rate`` then cosine to ``final_fraction`` of it."""
  warmup = min(int(cfg.warmup_steps), max(int(cfg.steps) - 1, 0))
  return optax.warmup_cosine_decay_schedule(
      0.0, cfg.learning_rate, max(warmup, 1), max(int(cfg.steps), warmup + 1),
      end_value=cfg.learning_rate * cfg.final_fraction)


def make_optimizer(cfg: ClassifierConfig) -> optax.GradientTransformation:
  """Adam (AdamW with ``weight_decay``) on :func:`learning_rate_schedule`."""
  lr = learning_rate_schedule(cfg)
  if cfg.weight_decay:
    return optax.adamw(lr, weight_decay=cfg.weight_decay)
  return optax.adam(lr)


def config_loss(cfg: ClassifierConfig) -> LossFn:
  """The ``loss`` callable of ``cfg.loss``."""
  if cfg.loss == "capsnet":
    from jaxvision.models import capsnet  # pylint: disable=import-outside-toplevel
    return capsnet.losses
  return cross_entropy_loss


def forward_flops(classifier: Classifier) -> float | None:
  """FLOPs of one image's forward pass in inference mode, from XLA's cost analysis of the
  compiled function (a multiply-add counts 2); None where the backend reports none."""
  x = jnp.zeros((1, *classifier.spec.image_shape), jnp.float32)
  compiled = jax.jit(lambda v, im: classifier.model.apply(v, im, train=False)).lower(
      classifier.variables, x).compile()
  cost = compiled.cost_analysis()
  if isinstance(cost, (list, tuple)):
    cost = cost[0] if cost else None
  if not cost or "flops" not in cost:
    return None
  return float(cost["flops"])


def inference_images_per_sec(classifier: Classifier, images: Any, *, repeats: int = 3) -> float:
  """Images per second of :meth:`Classifier.scores` on ``images`` (best of ``repeats``
  timed passes after a warm-up pass)."""
  import time  # pylint: disable=import-outside-toplevel
  classifier.scores(images)
  best = float("inf")
  for _ in range(int(repeats)):
    t = time.perf_counter()
    classifier.scores(images)
    best = min(best, time.perf_counter() - t)
  return len(images) / best
