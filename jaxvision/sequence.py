"""Classifiers over named input arrays: the glue shared by the text, video and visual
question answering models (:mod:`jaxvision.text`, :mod:`jaxvision.video`,
:mod:`jaxvision.vqa`), on the library's training loop.

A model is a flax module called as ``model(**inputs, train=bool)`` -> logits ``[B, K]``,
where ``inputs`` are named arrays: ``tokens [B, L]`` for a text CNN, ``clip [B, T, H, W, C]``
for a video net, ``image`` and ``question`` for VQA. Records are ``{name: array, "label":
int, ...}`` (an :class:`~jaxvision.data.ArraySource`); extra fields (a question type, a
sentence kind) are ignored by training and used to group the evaluation.

    spec = InputsSpec(model="TextCNN", num_classes=2, inputs={"tokens": ((64,), "int32")},
                      attributes={"vocab_size": 5000})
    clf, results = train_inputs_classifier(spec, train, test, SequenceConfig(...), workdir)
    clf.predict({"tokens": ids})                     # classes [N], scores [N, K]
    evaluate_inputs_classifier(clf, test, group="kind")["group_accuracy"]

``uint8`` inputs are images and are scaled to ``[0, 1]``; integer inputs stay integers
(token ids); floats stay floats.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import pathlib
import time
from typing import Any, Callable, Mapping, Sequence

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxvision import models
from jaxvision import weights as weights_lib
from jaxvision.tasks import process_local_pipeline
from jaxvision.train import Task
from jaxvision.train.loop import jsonable

__all__ = ["KIND", "InputsSpec", "InputsClassifier", "inputs_task",
           "evaluate_inputs_classifier", "SequenceConfig", "make_optimizer",
           "train_inputs_classifier", "InputsExperiment", "run_inputs_experiment",
           "inputs_table", "save_sequential_mnist_figure"]

KIND = "inputs_classifier"
_DTYPES = ("uint8", "int32", "float32")


@dataclasses.dataclass(frozen=True)
class InputsSpec:
  """What rebuilds a classifier over named inputs.

  Attributes:
    model: a name in :mod:`jaxvision.models`; ``attributes`` its constructor arguments
      (``num_classes`` is added).
    num_classes: outputs.
    inputs: ``{name: (shape without the batch axis, dtype)}``, dtype one of uint8 (an image,
      scaled to [0, 1]), int32 (ids), float32.
    class_names: names of the outputs (default "0", "1", ...).
    metadata: JSON data the predictor needs (a vocabulary, the answer list).
  """

  model: str
  num_classes: int
  inputs: Mapping[str, Any]
  attributes: Mapping[str, Any] = dataclasses.field(default_factory=dict)
  class_names: tuple[str, ...] | None = None
  metadata: Mapping[str, Any] = dataclasses.field(default_factory=dict)

  def __post_init__(self):
    if str(self.model) not in models.__all__:
      raise ValueError(f"`model` must name a model in jaxvision.models, got {self.model!r}.")
    if isinstance(self.num_classes, bool) or int(self.num_classes) < 2:
      raise ValueError(f"`num_classes` must be an integer >= 2, got {self.num_classes!r}.")
    if not isinstance(self.inputs, Mapping) or not self.inputs:
      raise ValueError(f"`inputs` must be a non-empty mapping name -> (shape, dtype), got "
                       f"{self.inputs!r}.")
    inputs = {}
    for name, value in self.inputs.items():
      try:
        shape, dtype = value
        shape = tuple(int(v) for v in shape)
      except (TypeError, ValueError):
        raise ValueError(f"`inputs[{name!r}]` must be (shape, dtype), got {value!r}.") from None
      if str(dtype) not in _DTYPES or min(shape, default=1) < 1:
        raise ValueError(f"`inputs[{name!r}]`: shape of positive ints and dtype in {_DTYPES}, "
                         f"got {value!r}.")
      inputs[str(name)] = (shape, str(dtype))
    object.__setattr__(self, "inputs", inputs)
    object.__setattr__(self, "attributes", dict(self.attributes))
    object.__setattr__(self, "metadata", dict(self.metadata))
    names = self.class_names
    if names is None:
      names = tuple(str(i) for i in range(int(self.num_classes)))
    if len(names) != int(self.num_classes):
      raise ValueError(f"`class_names` has {len(names)} names for {self.num_classes} classes.")
    object.__setattr__(self, "class_names", tuple(str(n) for n in names))

  def build(self):
    return getattr(models, self.model)(num_classes=int(self.num_classes), **self.attributes)

  def dummy_inputs(self, batch: int = 1) -> dict[str, jax.Array]:
    return {k: jnp.zeros((batch, *shape), jnp.float32 if dtype != "int32" else jnp.int32)
            for k, (shape, dtype) in self.inputs.items()}

  def to_dict(self) -> dict[str, Any]:
    return {"kind": KIND, "model": self.model, "num_classes": int(self.num_classes),
            "inputs": {k: [list(s), d] for k, (s, d) in self.inputs.items()},
            "attributes": dict(self.attributes), "class_names": list(self.class_names),
            "metadata": dict(self.metadata)}

  @classmethod
  def from_dict(cls, d: Mapping[str, Any]) -> "InputsSpec":
    if d.get("kind") != KIND:
      raise ValueError(f"the weights describe a {d.get('kind', 'different')!r} model, not a "
                       f"classifier over named inputs ({KIND!r}).")
    return cls(model=d["model"], num_classes=d["num_classes"],
               inputs={k: (tuple(s), t) for k, (s, t) in d["inputs"].items()},
               attributes=d.get("attributes", {}), class_names=tuple(d["class_names"]),
               metadata=d.get("metadata", {}))


def _prepare(spec: InputsSpec, batch: Mapping[str, Any], *, check: bool = True
             ) -> dict[str, jax.Array]:
  out = {}
  n = None
  for name, (shape, dtype) in spec.inputs.items():
    if name not in batch:
      raise ValueError(f"missing input {name!r} (the model reads {sorted(spec.inputs)}).")
    x = batch[name]
    if check:
      x = np.asarray(x) if not isinstance(x, jax.Array) else x
      if tuple(x.shape[1:]) != shape or x.ndim != len(shape) + 1:
        raise ValueError(f"input {name!r} must be [N, {', '.join(map(str, shape))}], got shape "
                         f"{tuple(x.shape)}.")
      if n is not None and x.shape[0] != n:
        raise ValueError(f"inputs have different numbers of records ({n} and {x.shape[0]}).")
      n = x.shape[0]
    if dtype == "uint8":
      x = jnp.asarray(x).astype(jnp.float32) / 255.0 if jnp.issubdtype(
          jnp.asarray(x).dtype, jnp.integer) else jnp.asarray(x, jnp.float32)
    elif dtype == "int32":
      if check and not jnp.issubdtype(jnp.asarray(x).dtype, jnp.integer):
        raise TypeError(f"input {name!r} must hold integer ids, got {jnp.asarray(x).dtype}.")
      x = jnp.asarray(x, jnp.int32)
    else:
      x = jnp.asarray(x, jnp.float32)
    out[name] = x
  return out


def _call(model, variables, inputs, *, train: bool, **kwargs):
  return model.apply(variables, **inputs, train=train, **kwargs)


def inputs_task(spec: InputsSpec, train_data, *, optimizer: optax.GradientTransformation,
                test_data=None, eval_batch_size: int = 256, initial_variables=None,
                group: str | None = None) -> Task:
  """The :class:`~jaxvision.train.Task` of a classifier over ``spec.inputs``: softmax
  cross-entropy, dropout from the step's key, BatchNorm statistics when the model has them;
  ``test_data`` evaluated by :func:`evaluate_inputs_classifier` (grouped by ``group``)."""
  model = spec.build()
  keep = set(spec.inputs) | {"label"}

  def init(rng):
    if initial_variables is not None:
      return initial_variables["params"], initial_variables.get("batch_stats", {})
    key = jax.random.wrap_key_data(jax.random.bits(rng, (4,), jnp.uint32), impl="rbg")
    variables = model.init(key, **spec.dummy_inputs(), train=False)
    return variables["params"], variables.get("batch_stats", {})

  def loss_fn(params, batch_stats, batch, rng):
    inputs = _prepare(spec, batch, check=False)
    variables = {"params": params}
    if batch_stats:
      variables["batch_stats"] = batch_stats
      logits, upd = _call(model, variables, inputs, train=True, mutable=["batch_stats"],
                          rngs={"dropout": rng})
      batch_stats = upd["batch_stats"]
    else:
      logits = _call(model, variables, inputs, train=True, rngs={"dropout": rng})
    labels = batch["label"].astype(jnp.int32)
    loss = jnp.mean(optax.softmax_cross_entropy_with_integer_labels(
        logits.astype(jnp.float32), labels))
    acc = jnp.mean((jnp.argmax(logits, -1) == labels).astype(jnp.float32))
    return loss, ({"accuracy": acc}, batch_stats)

  def train_iter(seed, batch_size):
    from jaxvision.data import ArraySource  # pylint: disable=import-outside-toplevel
    arrays = getattr(train_data, "arrays", None)
    source = ArraySource({k: v for k, v in arrays.items() if k in keep}) \
        if isinstance(arrays, Mapping) else train_data
    return process_local_pipeline(source, batch_size=batch_size, seed=seed)

  evaluate = None
  if test_data is not None:
    holder = {}

    def evaluate(state):
      variables = {"params": state.params}
      if state.batch_stats:
        variables["batch_stats"] = state.batch_stats
      if "clf" not in holder:
        holder["clf"] = InputsClassifier(spec, variables, batch_size=eval_batch_size)
      holder["clf"].variables = variables
      ev = evaluate_inputs_classifier(holder["clf"], test_data, group=group)
      out = {"accuracy": ev["accuracy"]}
      for g, v in ev.get("group_accuracy", {}).items():
        out[f"accuracy/{g}"] = v
      return out

  return Task(init=init, loss_fn=loss_fn, optimizer=optimizer, train_iter=train_iter,
              evaluate=evaluate)


class InputsClassifier:
  """A trained classifier over named inputs: ``predict(inputs) -> (classes [N], scores [N,
  K])`` in compiled batches of ``batch_size`` (the last one padded)."""

  def __init__(self, spec: InputsSpec, variables: Mapping[str, Any], *, batch_size: int = 256):
    if not isinstance(spec, InputsSpec):
      raise TypeError(f"`spec` must be an InputsSpec, got {type(spec).__name__}.")
    if int(batch_size) < 1:
      raise ValueError(f"`batch_size` must be >= 1, got {batch_size!r}.")
    self.spec = spec
    self.model = spec.build()
    self.variables = dict(variables)
    self.batch_size = int(batch_size)
    self._apply = jax.jit(lambda v, x: _call(self.model, v, x, train=False))

  @classmethod
  def load(cls, path, **kwargs) -> "InputsClassifier":
    variables, spec = weights_lib.load_weights(path)
    return cls(InputsSpec.from_dict(spec), variables, **kwargs)

  def save(self, path, **extra: Any):
    return weights_lib.save_weights(path, self.variables, {**self.spec.to_dict(), **extra})

  def scores(self, inputs: Mapping[str, Any]) -> np.ndarray:
    """``[N, K]`` logits."""
    if not isinstance(inputs, Mapping):
      raise TypeError(f"`inputs` must be a mapping of input names to arrays, got "
                      f"{type(inputs).__name__}.")
    x = _prepare(self.spec, inputs)
    n = next(iter(x.values())).shape[0]
    if n == 0:
      return np.zeros((0, self.spec.num_classes), np.float32)
    bs = min(self.batch_size, n)
    out = []
    for start in range(0, n, bs):
      chunk = {k: v[start:start + bs] for k, v in x.items()}
      m = next(iter(chunk.values())).shape[0]
      if m < bs:
        chunk = {k: jnp.pad(v, [(0, bs - m)] + [(0, 0)] * (v.ndim - 1))
                 for k, v in chunk.items()}
      out.append(np.asarray(self._apply(self.variables, chunk))[:m])
    return np.concatenate(out).astype(np.float32)

  def predict(self, inputs: Mapping[str, Any]) -> tuple[np.ndarray, np.ndarray]:
    s = self.scores(inputs)
    return s.argmax(-1).astype(np.int32), s


def _arrays(data) -> Mapping[str, np.ndarray]:
  arrays = data if isinstance(data, Mapping) else getattr(data, "arrays", None)
  if arrays is None:
    records = [data[i] for i in range(len(data))]
    arrays = {k: np.stack([r[k] for r in records]) for k in records[0]}
  return arrays


def evaluate_inputs_classifier(classifier: InputsClassifier, data, *, group: str | None = None,
                               predictions: bool = False) -> dict[str, Any]:
  """Accuracy (and, with ``group``, the accuracy per value of that field, e.g. a question
  type) of ``classifier`` on records with a ``label``; ``predictions=True`` adds the
  predicted classes."""
  arrays = _arrays(data)
  labels = np.asarray(arrays["label"]).astype(np.int64)
  preds, _ = classifier.predict({k: arrays[k] for k in classifier.spec.inputs})
  out: dict[str, Any] = {"accuracy": float(np.mean(preds == labels)) if len(labels) else
                         float("nan"), "num_examples": int(len(labels))}
  if group is not None:
    if group not in arrays:
      raise ValueError(f"`group`: the data has no field {group!r} (fields: {sorted(arrays)}).")
    g = np.asarray(arrays[group])
    names = classifier.spec.metadata.get(f"{group}_names")
    acc = {}
    for v in np.unique(g):
      key = names[int(v)] if names is not None else str(v)
      acc[key] = float(np.mean(preds[g == v] == labels[g == v]))
    out["group_accuracy"] = acc
  if predictions:
    out["predictions"] = preds
  return out


# ---------------------------------------------------------------------------------------------
# Recipes and the CLI driver.


@dataclasses.dataclass(frozen=True)
class SequenceConfig:
  """A recipe: the model, the optimiser (AdamW, warm-up + cosine, global-norm clipping) and
  the loop's cadence; ``data`` holds the data set's own settings (sizes, lengths)."""

  model: str
  attributes: Mapping[str, Any] = dataclasses.field(default_factory=dict)
  steps: int = 1000
  batch_size: int = 64
  learning_rate: float = 1e-3
  warmup_steps: int = 50
  final_fraction: float = 0.0
  weight_decay: float = 0.0
  grad_clip: float = 1.0
  eval_every: int = 0
  checkpoint_every: int = 500
  log_every: int = 100
  data: Mapping[str, Any] = dataclasses.field(default_factory=dict)

  def __post_init__(self):
    for name in ("steps", "batch_size"):
      if int(getattr(self, name)) < 1:
        raise ValueError(f"`{name}` must be >= 1, got {getattr(self, name)!r}.")
    if not self.learning_rate > 0:
      raise ValueError(f"`learning_rate` must be > 0, got {self.learning_rate!r}.")


def make_optimizer(cfg: SequenceConfig) -> optax.GradientTransformation:
  warmup = min(int(cfg.warmup_steps), max(int(cfg.steps) - 1, 0))
  lr = optax.warmup_cosine_decay_schedule(0.0, cfg.learning_rate, max(warmup, 1),
                                          max(int(cfg.steps), warmup + 1),
                                          end_value=cfg.learning_rate * cfg.final_fraction)
  opt = optax.adamw(lr, weight_decay=cfg.weight_decay)
  if cfg.grad_clip:
    opt = optax.chain(optax.clip_by_global_norm(cfg.grad_clip), opt)
  return opt


def train_inputs_classifier(spec: InputsSpec, train_data, test_data, cfg: SequenceConfig,
                            workdir, *, seed: int = 0, progress: bool | None = None,
                            group: str | None = None, initial_variables=None
                            ) -> tuple[InputsClassifier, dict[str, Any]]:
  """Trains with :func:`inputs_task` on the library's loop (checkpoints in ``workdir``,
  exact resume); returns the classifier and the loop's results."""
  from jaxvision.train import TrainConfig, train_and_evaluate  # pylint: disable=import-outside-toplevel
  task = inputs_task(spec, train_data, optimizer=make_optimizer(cfg), test_data=test_data,
                     initial_variables=initial_variables, group=group)
  out = train_and_evaluate(TrainConfig(num_steps=cfg.steps, batch_size=cfg.batch_size,
                                       seed=seed, checkpoint_every=cfg.checkpoint_every,
                                       log_every=cfg.log_every, eval_every=cfg.eval_every,
                                       progress=progress), workdir, task=task)
  variables = {"params": out.state.params}
  if out.state.batch_stats:
    variables["batch_stats"] = out.state.batch_stats
  return InputsClassifier(spec, variables), out.results


@dataclasses.dataclass(frozen=True)
class InputsExperiment:
  """What one experiment over named inputs supplies to :func:`run_inputs_experiment`.

  Attributes:
    name: the CLI's module stem.
    configs / default_config / results_file: as the other drivers.
    data: ``data(cfg, args) -> (train, test, spec_fields)``: sources of records and the
      :class:`InputsSpec` fields the data decides (``inputs``, ``num_classes``,
      ``class_names``, ``metadata``).
    group: the record field the evaluation is grouped by (None: none).
    report: ``report(classifier, test, workdir) -> dict`` of extra results (pictures under
      ``"pictures"``), after training or evaluation.
    table: ``table(runs) -> str`` for ``--table``.
  """

  name: str
  configs: Mapping[str, SequenceConfig]
  data: Callable[[SequenceConfig, argparse.Namespace], tuple[Any, Any, Mapping[str, Any]]]
  default_config: str = "cpu"
  results_file: str = "results.json"
  group: str | None = None
  report: Callable[[InputsClassifier, Any, str], Mapping[str, Any]] | None = None
  table: Callable[[Sequence[Mapping[str, Any]]], str] | None = None
  extra_flags: Callable[[argparse.ArgumentParser], None] | None = None


def _load_data(exp: InputsExperiment, cfg: SequenceConfig, args):
  """``exp.data``, its missing or unreadable files reported as a flag error."""
  from jaxvision.experiment import FlagError  # pylint: disable=import-outside-toplevel
  try:
    return exp.data(cfg, args)
  except (FileNotFoundError, ValueError) as e:
    raise FlagError(f"--data-dir: {e}") from None


def _group(exp: InputsExperiment, data) -> str | None:
  """The experiment's grouping field where the data has it (IMDB has no sentence kinds)."""
  return exp.group if exp.group is not None and exp.group in _arrays(data) else None


def _throughput(clf: InputsClassifier, test, n: int = 512) -> float:
  arrays = _arrays(test)
  inputs = {k: np.asarray(arrays[k])[:n] for k in clf.spec.inputs}
  clf.scores(inputs)
  best = float("inf")
  for _ in range(3):
    t = time.perf_counter()
    clf.scores(inputs)
    best = min(best, time.perf_counter() - t)
  return len(next(iter(inputs.values()))) / best


def run_inputs_experiment(exp: InputsExperiment, argv: Sequence[str] | None = None, *,
                          description: str | None = None) -> dict[str, Any]:
  """Parses ``argv``; trains (resuming from ``--workdir``) or evaluates (``--evaluate``)
  and returns the results (also ``<workdir>/results.json``; ``--record`` appends them)."""
  from jaxvision import experiment as ex  # pylint: disable=import-outside-toplevel
  parser = argparse.ArgumentParser(prog=f"python -m experiments.{exp.name}",
                                   description=description, formatter_class=ex.HelpFormatter)
  ex.add_flags(parser, configs=sorted(exp.configs), default_config=exp.default_config,
               results_file=exp.results_file, eval_every=True)
  if exp.table is not None:
    parser.add_argument("--table", action="store_true",
                        help="print the table of the recorded runs and exit")
  if exp.extra_flags is not None:
    exp.extra_flags(parser)
  args = parser.parse_args(argv)
  with ex.cli_errors(parser):
    if getattr(args, "table", False):
      path = pathlib.Path(args.record or exp.results_file)
      if not path.exists():
        raise ex.FlagError(f"no results file {str(path)!r} to tabulate.")
      text = exp.table(json.loads(path.read_text())["runs"])
      print(text)
      return {"table": text}
    start = time.time()
    ex.setup(args)
    if args.workdir is None:
      raise ex.FlagError("--workdir is required to train or evaluate.")
    os.makedirs(args.workdir, exist_ok=True)
    overrides = ex.config_overrides(args, {"steps": "steps", "batch_size": "batch_size",
                                           "eval_every": "eval_every"})
    if args.evaluate:
      source = args.restore_weights or args.workdir
      variables, spec_d = ex.load_weights_spec(source)
      try:
        clf = InputsClassifier(InputsSpec.from_dict(spec_d), variables)
      except (KeyError, ValueError) as e:
        raise ex.FlagError(f"--restore-weights: {e}") from None
      name = args.config or spec_d.get("config_name", exp.default_config)
      cfg = exp.configs[name if name in exp.configs else exp.default_config]
      trained_cfg = spec_d.get("config", {})
      ex.check_against_weights(overrides, trained_cfg, repr(str(source)))
      if trained_cfg.get("data"):
        cfg = dataclasses.replace(cfg, data=dict(trained_cfg["data"]))
      _, test, _ = _load_data(exp, cfg, args)
      trained = False
    else:
      name = args.config or exp.default_config
      cfg = dataclasses.replace(exp.configs[name], **overrides)
      train, test, fields = _load_data(exp, cfg, args)
      fields = dict(fields)
      # Attributes the data decides (a vocabulary's size) join the config's.
      spec = InputsSpec(model=cfg.model, attributes={**cfg.attributes,
                                                     **fields.pop("attributes", {})}, **fields)
      initial = None
      if args.restore_weights:
        try:
          initial = InputsClassifier.load(args.restore_weights).variables
        except (FileNotFoundError, ValueError) as e:
          raise ex.FlagError(f"--restore-weights: {e}") from None
      clf, train_results = train_inputs_classifier(
          spec, train, test, cfg, args.workdir, seed=args.seed, progress=args.progress,
          group=_group(exp, test), initial_variables=initial)
      if jax.process_index() == 0:
        clf.save(os.path.join(args.workdir, "weights.msgpack"), config_name=name,
                 config=jsonable(dataclasses.asdict(cfg)))
      trained = True
    ev = evaluate_inputs_classifier(clf, test, group=_group(exp, test))
    extra = dict(exp.report(clf, test, args.workdir)) if exp.report is not None and \
        jax.process_index() == 0 else {}
    wall = time.time() - start
    results = {
        "command": ex.command_line(argv, f"experiments.{exp.name}"),
        "config_name": name, "config": dataclasses.asdict(cfg), "model": cfg.model,
        "params": models.count_params(clf.variables["params"]),
        "test_accuracy": ev["accuracy"], "num_test_examples": ev["num_examples"],
        "inference_examples_per_sec": round(_throughput(clf, test), 1),
        **({"group_accuracy": ev["group_accuracy"]} if "group_accuracy" in ev else {}),
        **extra, "machine": ex.machine(), "date": time.strftime("%Y-%m-%d"),
    }
    if trained:
      results["wall_seconds"] = round(ex.cumulative_wall_seconds(args.workdir, wall), 1)
      results["process_cpu_seconds"] = round(time.process_time(), 1)
      sps = train_results.get("steps_per_sec")
      results["train_examples_per_sec"] = None if not sps else round(sps * cfg.batch_size, 1)
      results["steps"] = cfg.steps
    else:
      results["evaluated"] = str(args.restore_weights or args.workdir)
    ex.finish(args.workdir, results, record=args.record if trained else None)
    groups = ev.get("group_accuracy")
    print(f"{exp.name} ({name}, {cfg.model}): test accuracy {ev['accuracy']:.4f} on "
          f"{ev['num_examples']} examples"
          + (" | " + ", ".join(f"{k} {v:.3f}" for k, v in groups.items()) if groups else "")
          + (f", {results['wall_seconds']:.0f} s" if trained else ""))
    return results


def inputs_table(runs: Sequence[Mapping[str, Any]]) -> str:
  """A Markdown table, one row per config (its latest run): model, params, accuracy overall
  and per group, train / inference examples per second, wall time."""
  latest: dict[str, Mapping[str, Any]] = {}
  for r in runs:
    latest[r["config_name"]] = r
  groups: list[str] = []
  for r in latest.values():
    for g in r.get("group_accuracy", {}):
      if g not in groups:
        groups.append(g)
  head = ["config", "model", "params", "accuracy", *groups, "train ex/s", "inference ex/s",
          "wall (s)"]
  lines = ["| " + " | ".join(head) + " |", "|" + "---|" * 2 + "---:|" * (len(head) - 2)]
  for name, r in latest.items():
    ga = r.get("group_accuracy", {})
    cells = [name, r["model"], f"{r['params']:,}", f"{r['test_accuracy']:.3f}",
             *[f"{ga[g]:.3f}" if g in ga else "-" for g in groups],
             str(r.get("train_examples_per_sec", "-")),
             str(r.get("inference_examples_per_sec", "-")), str(r.get("wall_seconds", "-"))]
    lines.append("| " + " | ".join(cells) + " |")
  return "\n".join(lines)


def save_sequential_mnist_figure(path, classifier, images: np.ndarray, labels: np.ndarray, *,
                                 count: int = 6, title: str = "") -> str:
  """A PNG for a sequential-MNIST classifier: for ``count`` test digits, the image beside the
  class probabilities of the final step after reading the first ``r`` rows with the rest of
  the image blank (``r = 0 .. 28``; the true class bold) -- how much of a digit the model
  needs. (The outputs at earlier *time steps* are not trained, only the final one is.)"""
  import matplotlib  # pylint: disable=import-outside-toplevel
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # pylint: disable=import-outside-toplevel
  images = np.asarray(images)[:count]
  labels = np.asarray(labels)[:count]
  x = images.astype(np.float32) / 255.0 if images.dtype == np.uint8 else images
  if x.ndim == 3:
    x = x[..., None]
  h = x.shape[1]
  rows = np.arange(h + 1)
  keep = (np.arange(h)[None, :] < rows[:, None]).astype(np.float32)        # [R, H]
  partial = x[:, None] * keep[None, :, :, None, None]                        # [N, R, H, W, 1]
  scores = classifier.scores(partial.reshape(-1, *x.shape[1:])).reshape(len(x), len(rows), -1)
  probs = np.exp(scores - scores.max(-1, keepdims=True))
  probs /= probs.sum(-1, keepdims=True)
  fig, axes = plt.subplots(len(images), 2, figsize=(10, 1.9 * len(images)),
                           gridspec_kw={"width_ratios": [1, 5]}, squeeze=False)
  for i in range(len(images)):
    axes[i, 0].imshow(x[i, ..., 0], cmap="gray")
    axes[i, 0].set_xticks([])
    axes[i, 0].set_yticks([])
    pred = int(probs[i, -1].argmax())
    axes[i, 0].set_title(f"true {labels[i]}, pred {pred}", fontsize=9,
                         color="green" if pred == labels[i] else "red")
    ax = axes[i, 1]
    for k in range(probs.shape[-1]):
      true = k == labels[i]
      ax.plot(rows, probs[i, :, k], lw=2.4 if true else 0.8, color="C0" if true else "0.65",
              marker="o" if true else None, ms=3,
              label="true class" if true else ("other classes" if k == (1 if labels[i] == 0
                                                                         else 0) else None))
    ax.set_ylim(-0.02, 1.02)
    ax.set_xlim(0, h)
    ax.set_ylabel("P(class)", fontsize=8)
    if i == 0:
      ax.legend(loc="upper left", fontsize=8)
  axes[-1, 1].set_xlabel(f"rows read ({x.shape[2]} pixels each, one at a time); the rest blank")
  fig.suptitle(title or "sequential MNIST: the prediction after reading the first rows",
               fontsize=10)
  fig.tight_layout()
  fig.savefig(path, dpi=80)
  plt.close(fig)
  return str(path)
