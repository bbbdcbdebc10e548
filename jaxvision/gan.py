"""Generative adversarial networks: losses, the 1-D warm-up, DCGAN training, sampling, and an
offline Frechet distance.

Losses (Goodfellow et al. 2014). With ``D`` a logit and ``sigma`` the sigmoid, the
discriminator minimises ``-log sigma(D(x)) - log(1 - sigma(D(G(z))))``. The generator's
*saturating* loss is ``log(1 - sigma(D(G(z))))`` (minimax); its gradient with respect to the
logit is ``-sigma(D(G(z)))``, which vanishes exactly when the discriminator confidently
rejects the samples, i.e. at the start of training: the generator stalls. The
*non-saturating* loss ``-log sigma(D(G(z)))`` has gradient ``sigma - 1``, close to ``-1``
there (:func:`generator_loss`, tested; the warm-up shows both).

DCGAN training (:func:`gan_task`) runs on the library's training loop
(:func:`jaxvision.train.train_and_evaluate`: sharded data parallel, checkpoints with exact
resume, logging), as *simultaneous* gradient steps on one optimizer state: the loop
differentiates ``L_D(d, stop_gradient(G_g(z))) + L_G(stop_gradient(d), g)``, whose gradient is
``dL_D/dd`` for the discriminator's parameters and ``dL_G/dg`` for the generator's. Adam keeps
separate moments per parameter, so this is two Adams with the same (decaying) learning rate,
updated at the same step from the same batch (DCGAN alternates them; both are standard).

BatchNorm, the two known pitfalls:

* real and generated batches: the discriminator sees ``concat([real, fake])`` as *one* batch
  in both terms, so BatchNorm normalises real and generated images with the same statistics
  (separate batches would let it tell them apart by their batch statistics alone, and would
  make ``L_G`` see different statistics than ``L_D``); the running averages are updated from
  the ``L_D`` pass only;
* train/eval mode: during training both networks run in train mode (batch statistics);
  :class:`Generator` samples in eval mode (running averages, momentum 0.9), which the
  decayed learning rate makes stable by the end of training; ``train_mode=True`` samples with
  batch statistics instead.

The Frechet distance (:func:`frechet_distance`, Heusel et al. 2017's FID formula) is computed
on the 128-D penultimate features of a small MNIST classifier
(:class:`jaxvision.models.MnistFeatureNet`, weights committed in
``experiments/results/mnist_features_weights.msgpack``), since Inception weights cannot be
downloaded here. :func:`generator_report` gives it beside its *floor* (training vs test
images, same sample sizes) and the class histogram of the samples (mode coverage).
"""

from __future__ import annotations

import dataclasses
import functools
import json
import os
import pathlib
from typing import Any, Callable, Mapping, NamedTuple, Sequence

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxvision import models
from jaxvision import weights as weights_lib
from jaxvision.data.pipeline import ArraySource
from jaxvision.tasks import process_local_pipeline
from jaxvision.train import Task

__all__ = ["discriminator_loss", "generator_loss", "GaussianGANResult", "train_gaussian_gan",
           "GANSpec", "GANConfig", "gan_task", "gan_losses", "make_gan_optimizer", "Generator",
           "to_unit_range", "frechet_distance", "gaussian_statistics", "FeatureNet",
           "generator_report", "mnist_gan_source", "coloured_mnist_source",
           "image_folder_source", "interpolate_latents", "generator_ema", "GeneratorEMAState", "reference_statistics",
           "generator_from_state", "train_gan", "sample_grid", "interpolation_grid", "init_gan",
           "KIND"]

KIND = "gan"


# ---------------------------------------------------------------------------------------------
# Losses.

def discriminator_loss(real_logits: jax.Array, fake_logits: jax.Array) -> jax.Array:
  """``mean(-log sigma(real)) + mean(-log(1 - sigma(fake)))`` from logits (stable)."""
  return (jnp.mean(optax.sigmoid_binary_cross_entropy(real_logits, jnp.ones_like(real_logits)))
          + jnp.mean(optax.sigmoid_binary_cross_entropy(fake_logits,
                                                        jnp.zeros_like(fake_logits))))


def generator_loss(fake_logits: jax.Array, *, saturating: bool = False) -> jax.Array:
  """Non-saturating ``mean(-log sigma(D(G(z))))`` (default) or the minimax
  ``mean(log(1 - sigma(D(G(z)))))`` (``saturating=True``), from logits.

  >>> logits = jnp.array([-6.0])        # the discriminator rejects the sample
  >>> g = lambda s: float(jax.grad(lambda l: generator_loss(l, saturating=s))(logits)[0])
  >>> round(g(True), 4), round(g(False), 4)     # d loss / d logit
  (-0.0025, -0.9975)
  """
  if saturating:
    return -jnp.mean(optax.sigmoid_binary_cross_entropy(fake_logits,
                                                        jnp.zeros_like(fake_logits)))
  return jnp.mean(optax.sigmoid_binary_cross_entropy(fake_logits, jnp.ones_like(fake_logits)))


# ---------------------------------------------------------------------------------------------
# The 1-D warm-up.

@dataclasses.dataclass
class GaussianGANResult:
  """What :func:`train_gaussian_gan` returns (NumPy arrays).

  Attributes:
    steps: the recorded steps ``[R]``.
    mean / std: the generated distribution's mean and std at those steps (the generator is
      ``a z + b`` with ``z ~ N(0, 1)``: exactly ``b`` and ``|a|``).
    d_loss / g_loss: the losses at those steps.
    grid / real_density / fake_density: densities on ``grid`` (``[G]``; ``[R, G]`` for the
      generated one) for the plot.
    params: the final generator and discriminator parameters.
  """

  steps: np.ndarray
  mean: np.ndarray
  std: np.ndarray
  d_loss: np.ndarray
  g_loss: np.ndarray
  grid: np.ndarray
  real_density: np.ndarray
  fake_density: np.ndarray
  params: dict[str, Any]


def _normal_pdf(x, mean, std):
  return np.exp(-0.5 * ((x - mean) / std) ** 2) / (std * np.sqrt(2 * np.pi))


def train_gaussian_gan(*, target_mean: float = 4.0, target_std: float = 1.25,
                       steps: int = 3000, batch_size: int = 256, learning_rate: float = 1e-3,
                       saturating: bool = False, hidden: int = 32, d_steps: int = 1,
                       optimizer: str = "adam", d_pretrain: int = 0,
                       record_every: int = 100, seed: int = 0) -> GaussianGANResult:
  """The notes' first GAN: a linear generator learns ``N(target_mean, target_std^2)`` against
  a 3-layer MLP discriminator, with alternating Adam steps (``d_steps`` discriminator steps,
  then one generator step; each step on fresh samples), after ``d_pretrain`` discriminator
  steps against the initial generator (a confident discriminator, the situation where the
  saturating loss's gradient vanishes). ``optimizer``: ``"adam"`` (b1 = 0.5) or ``"sgd"``
  (momentum 0.9). Adam rescales each parameter's step by its gradient's running RMS and so
  partly hides the vanishing gradient; SGD shows it.

  The generator starts at ``N(0, 1)``; with the non-saturating loss its mean and std reach
  the target's within a few thousand steps, with ``saturating=True`` they barely move while
  the discriminator rejects every sample (the notes' point; tested).
  """
  for name, v in (("steps", steps), ("batch_size", batch_size), ("record_every", record_every),
                  ("hidden", hidden), ("d_steps", d_steps)):
    if isinstance(v, bool) or int(v) < 1:
      raise ValueError(f"`{name}` must be a positive integer, got {v!r}.")
  if not float(target_std) > 0:
    raise ValueError(f"`target_std` must be > 0, got {target_std!r}.")
  if not float(learning_rate) > 0:
    raise ValueError(f"`learning_rate` must be > 0, got {learning_rate!r}.")
  gen, disc = models.LinearGenerator(), models.MLPDiscriminator(hidden=int(hidden))
  kg, kd, kt = jax.random.split(jax.random.key(int(seed)), 3)
  x1 = jnp.zeros((1, 1))
  params = {"g": gen.init(kg, x1)["params"], "d": disc.init(kd, x1)["params"]}
  if optimizer == "adam":
    tx = optax.adam(float(learning_rate), b1=0.5)
  elif optimizer == "sgd":
    tx = optax.sgd(float(learning_rate), momentum=0.9)
  else:
    raise ValueError(f"`optimizer` must be 'adam' or 'sgd', got {optimizer!r}.")
  opt = {"g": tx.init(params["g"]), "d": tx.init(params["d"])}
  b = int(batch_size)

  def d_loss_fn(pd, pg, real, z):
    fake = gen.apply({"params": pg}, z)
    return discriminator_loss(disc.apply({"params": pd}, real), disc.apply({"params": pd}, fake))

  def g_loss_fn(pg, pd, z):
    return generator_loss(disc.apply({"params": pd}, gen.apply({"params": pg}, z)),
                          saturating=saturating)

  def d_step(carry, key):
    pd, od, pg = carry
    k1, k2 = jax.random.split(key)
    real = target_mean + target_std * jax.random.normal(k1, (b, 1))
    dl, gd = jax.value_and_grad(d_loss_fn)(pd, pg, real, jax.random.normal(k2, (b, 1)))
    upd, od = tx.update(gd, od, pd)
    return (optax.apply_updates(pd, upd), od, pg), dl

  def step(carry, key):
    params, opt = carry
    kd, k3 = jax.random.split(key)
    (pd, od, _), dls = jax.lax.scan(d_step, (params["d"], opt["d"], params["g"]),
                                    jax.random.split(kd, int(d_steps)))
    dl = dls[-1]
    gl, gg = jax.value_and_grad(g_loss_fn)(params["g"], pd, jax.random.normal(k3, (b, 1)))
    upd, og = tx.update(gg, opt["g"], params["g"])
    pg = optax.apply_updates(params["g"], upd)
    a = pg["affine"]["kernel"][0, 0]
    return ({"g": pg, "d": pd}, {"g": og, "d": od}), (pg["affine"]["bias"][0], jnp.abs(a),
                                                      dl, gl)

  @jax.jit
  def run(params, opt, pre_keys, keys):
    (pd, od, _), _ = jax.lax.scan(d_step, (params["d"], opt["d"], params["g"]), pre_keys)
    return jax.lax.scan(step, ({"g": params["g"], "d": pd}, {"g": opt["g"], "d": od}), keys)

  if isinstance(d_pretrain, bool) or int(d_pretrain) < 0:
    raise ValueError(f"`d_pretrain` must be >= 0, got {d_pretrain!r}.")
  kp, kt = jax.random.split(kt)
  keys = jax.random.split(kt, int(steps))
  (params, _), (means, stds, dls, gls) = run(params, opt, jax.random.split(kp, int(d_pretrain)),
                                             keys)
  means, stds, dls, gls = map(np.asarray, (means, stds, dls, gls))
  every = int(record_every)
  idx = np.unique(np.r_[np.arange(every - 1, int(steps), every), int(steps) - 1])
  grid = np.linspace(target_mean - 5 * target_std - 2, target_mean + 5 * target_std + 2, 200)
  fake_density = np.stack([_normal_pdf(grid, means[i], max(stds[i], 1e-3)) for i in idx])
  return GaussianGANResult(steps=idx + 1, mean=means[idx], std=stds[idx], d_loss=dls[idx],
                           g_loss=gls[idx], grid=grid,
                           real_density=_normal_pdf(grid, target_mean, target_std),
                           fake_density=fake_density, params=jax.device_get(params))


# ---------------------------------------------------------------------------------------------
# DCGAN.

@dataclasses.dataclass(frozen=True)
class GANSpec:
  """What rebuilds a GAN: ``jaxvision.models.<generator>(**generator_attributes)`` and the
  discriminator likewise, on images of ``image_shape = (S, S, C)``."""

  generator: str = "DCGANGeneratorMNIST"
  discriminator: str = "DCGANDiscriminatorMNIST"
  generator_attributes: Mapping[str, Any] = dataclasses.field(default_factory=dict)
  discriminator_attributes: Mapping[str, Any] = dataclasses.field(default_factory=dict)

  def __post_init__(self):
    for field in ("generator", "discriminator"):
      name = getattr(self, field)
      if str(name) not in models.__all__:
        raise ValueError(f"`{field}` must name a model in jaxvision.models, got {name!r}.")
    object.__setattr__(self, "generator_attributes", dict(self.generator_attributes))
    object.__setattr__(self, "discriminator_attributes", dict(self.discriminator_attributes))

  def build(self):
    """``(generator, discriminator)`` flax modules."""
    return (getattr(models, self.generator)(**self.generator_attributes),
            getattr(models, self.discriminator)(**self.discriminator_attributes))

  @property
  def latent_dim(self) -> int:
    return int(self.build()[0].latent_dim)

  @property
  def image_shape(self) -> tuple[int, int, int]:
    g = self.build()[0]
    return (g.image_size, g.image_size, g.channels)

  def to_dict(self) -> dict[str, Any]:
    return {"kind": KIND, "generator": self.generator, "discriminator": self.discriminator,
            "generator_attributes": dict(self.generator_attributes),
            "discriminator_attributes": dict(self.discriminator_attributes)}

  @classmethod
  def from_dict(cls, d: Mapping[str, Any]) -> "GANSpec":
    if d.get("kind") != KIND:
      raise ValueError(f"the weights describe a {d.get('kind', 'different')!r} model, not a GAN.")
    return cls(generator=d["generator"], discriminator=d["discriminator"],
               generator_attributes=d.get("generator_attributes", {}),
               discriminator_attributes=d.get("discriminator_attributes", {}))


def to_unit_range(images: jax.Array) -> jax.Array:
  """uint8 ``[0, 255]`` (or float ``[0, 1]``) images -> float32 ``[-1, 1]`` (tanh's range)."""
  x = jnp.asarray(images)
  if jnp.issubdtype(x.dtype, jnp.integer):
    return x.astype(jnp.float32) / 127.5 - 1.0
  return x.astype(jnp.float32) * 2.0 - 1.0


def gan_losses(generator, discriminator, params, batch_stats, real, z, *,
               saturating: bool = False):
  """The simultaneous-update objective ``L_D(d, sg(G(z))) + L_G(sg(d), g)`` and its parts
  (see the module docstring): ``(loss, (metrics, new_batch_stats))``."""
  g_vars = {"params": params["generator"], "batch_stats": batch_stats["generator"]}
  fake, g_state = generator.apply(g_vars, z, train=True, mutable=["batch_stats"])
  b = real.shape[0]
  d_vars = {"params": params["discriminator"],
            "batch_stats": batch_stats.get("discriminator", {})}
  if not d_vars["batch_stats"]:
    d_vars.pop("batch_stats")
  # L_D: the discriminator's gradient, generated images held fixed; one batch of real + fake.
  logits, d_state = discriminator.apply(
      d_vars, jnp.concatenate([real, jax.lax.stop_gradient(fake)]), train=True,
      mutable=["batch_stats"])
  d_loss = discriminator_loss(logits[:b], logits[b:])
  # L_G: the generator's gradient through a frozen discriminator, same mixed batch.
  logits_g, _ = discriminator.apply(jax.lax.stop_gradient(d_vars),
                                    jnp.concatenate([jax.lax.stop_gradient(real), fake]),
                                    train=True, mutable=["batch_stats"])
  g_loss = generator_loss(logits_g[b:], saturating=saturating)
  new_stats = {"generator": g_state["batch_stats"],
               "discriminator": d_state.get("batch_stats", {})}
  metrics = {"d_loss": d_loss, "g_loss": g_loss,
             "d_real": jnp.mean(jax.nn.sigmoid(logits[:b])),
             "d_fake": jnp.mean(jax.nn.sigmoid(logits[b:]))}
  return d_loss + g_loss, (metrics, new_stats)


def init_gan(spec: GANSpec, rng: jax.Array) -> tuple[dict[str, Any], dict[str, Any]]:
  """``(params, batch_stats)``, each ``{"generator": ..., "discriminator": ...}``."""
  gen, disc = spec.build()
  kg, kd = jax.random.split(rng)
  gv = gen.init(kg, jnp.zeros((2, gen.latent_dim)), train=False)
  dv = disc.init(kd, jnp.zeros((2, *spec.image_shape)), train=False)
  return ({"generator": gv["params"], "discriminator": dv["params"]},
          {"generator": gv.get("batch_stats", {}), "discriminator": dv.get("batch_stats", {})})


def gan_task(spec: GANSpec, train_data, *, optimizer: optax.GradientTransformation,
             saturating: bool = False, evaluate: Callable | None = None) -> Task:
  """The :class:`~jaxvision.train.Task` of a GAN on a source of ``{"image"}`` records
  (uint8 ``[S, S, C]`` matching the generator's output)."""
  gen, disc = spec.build()
  shape = spec.image_shape

  def init(rng):
    key = jax.random.wrap_key_data(jax.random.bits(rng, (4,), jnp.uint32), impl="rbg")
    return init_gan(spec, key)

  def loss_fn(params, batch_stats, batch, rng):
    real = to_unit_range(batch["image"])
    if real.ndim == 3:
      real = real[..., None]
    if tuple(real.shape[1:]) != shape:
      raise ValueError(f"the data's images are {tuple(real.shape[1:])}; the generator makes "
                       f"{shape}.")
    z = jax.random.normal(rng, (real.shape[0], gen.latent_dim))
    return gan_losses(gen, disc, params, batch_stats, real, z, saturating=saturating)

  def train_iter(seed, batch_size):
    return process_local_pipeline(train_data, batch_size=batch_size, seed=seed)

  return Task(init=init, loss_fn=loss_fn, optimizer=optimizer, train_iter=train_iter,
              evaluate=evaluate)


@dataclasses.dataclass(frozen=True)
class GANConfig:
  """A DCGAN recipe (the CLI's ``--config``).

  Attributes:
    spec: the networks.
    dataset: ``"mnist"`` (28 x 28 or 32 x 32 by the generator), ``"coloured_mnist"``
      (64 x 64 RGB) or ``"folder"`` (``--data-dir`` of images).
    steps / batch_size: simultaneous optimizer steps and batch.
    learning_rate / final_fraction: Adam (b1 = 0.5, DCGAN's), the same rate for both
      networks, decayed linearly to ``final_fraction * learning_rate``.
    train_images: the first N training images (None: all).
    eval_every / eval_samples: Frechet distance + sample grid every this many steps, on this
      many samples (0: only at the end).
    ema_decay: keep a moving average of the generator's weights with this decay and sample
      from it (0: none); the raw generator's distance is reported beside it.
  """

  spec: GANSpec = GANSpec()
  dataset: str = "mnist"
  steps: int = 3000
  batch_size: int = 64
  learning_rate: float = 2e-4
  final_fraction: float = 0.0
  saturating: bool = False
  train_images: int | None = None
  eval_every: int = 0
  eval_samples: int = 10000
  checkpoint_every: int = 250
  log_every: int = 50
  ema_decay: float = 0.0


class GeneratorEMAState(NamedTuple):
  """The exponential moving average of the generator's parameters (in the optimizer state,
  so it is checkpointed and resumed with it)."""

  ema: Any


def generator_ema(decay: float) -> optax.GradientTransformation:
  """An optax transformation that leaves the updates alone and keeps
  ``ema <- decay * ema + (1 - decay) * new generator params`` (Yazici et al. 2019: averaged
  generator weights give better samples); chain it after the optimizer."""
  if not 0.0 <= float(decay) < 1.0:
    raise ValueError(f"`decay` must be in [0, 1), got {decay!r}.")

  def init(params):
    return GeneratorEMAState(ema=jax.tree.map(jnp.asarray, params["generator"]))

  def update(updates, state, params=None):
    if params is None:
      raise ValueError("generator_ema needs the params (optax passes them in the loop).")
    new = optax.apply_updates(params["generator"], updates["generator"])
    ema = jax.tree.map(lambda e, p: decay * e + (1.0 - decay) * p, state.ema, new)
    return updates, GeneratorEMAState(ema=ema)

  return optax.GradientTransformation(init, update)


def make_gan_optimizer(cfg: GANConfig) -> optax.GradientTransformation:
  """Adam(b1 = 0.5) with a linear decay of the learning rate over ``cfg.steps``; with
  ``cfg.ema_decay`` also the generator's moving average (:func:`generator_ema`)."""
  lr = optax.linear_schedule(cfg.learning_rate, cfg.learning_rate * cfg.final_fraction,
                             cfg.steps)
  adam = optax.adam(lr, b1=0.5)
  if cfg.ema_decay:
    return optax.chain(adam, generator_ema(cfg.ema_decay))
  return adam


class Generator:
  """A trained generator: ``sample(n)`` -> uint8 images ``[n, S, S, C]``.

  ``train_mode=True`` normalises with each batch's statistics instead of the running
  averages (see the module docstring).
  """

  def __init__(self, spec: GANSpec, variables: Mapping[str, Any], *, batch_size: int = 500):
    if not isinstance(spec, GANSpec):
      raise TypeError(f"`spec` must be a GANSpec, got {type(spec).__name__}.")
    self.spec = spec
    self.model = spec.build()[0]
    self.variables = dict(variables)
    self.batch_size = int(batch_size)
    self._eval, self._train = _generator_fns(spec.generator,
                                             json.dumps(spec.generator_attributes, sort_keys=True))

  @classmethod
  def load(cls, path, **kwargs) -> "Generator":
    """From a weights file written by :meth:`save` (or a workdir holding ``weights.msgpack``)."""
    variables, spec = weights_lib.load_weights(path)
    return cls(GANSpec.from_dict(spec), variables, **kwargs)

  def save(self, path, **extra: Any):
    return weights_lib.save_weights(path, self.variables, {**self.spec.to_dict(), **extra})

  @property
  def latent_dim(self) -> int:
    return int(self.model.latent_dim)

  def latents(self, n: int, seed: int = 0) -> np.ndarray:
    """``[n, latent_dim]`` standard normal latents."""
    if isinstance(n, bool) or int(n) < 0:
      raise ValueError(f"`n` must be >= 0, got {n!r}.")
    return np.asarray(jax.random.normal(jax.random.key(int(seed)), (int(n), self.latent_dim)))

  def generate(self, z: Any, *, train_mode: bool = False) -> np.ndarray:
    """Float images in ``[-1, 1]`` for latents ``z`` ``[N, latent_dim]``."""
    z = jnp.asarray(z, jnp.float32)
    if z.ndim != 2 or z.shape[1] != self.latent_dim:
      raise ValueError(f"`z` must be [N, {self.latent_dim}], got shape {tuple(z.shape)}.")
    fn = self._train if train_mode else self._eval
    out = [np.asarray(fn(self.variables, z[i:i + self.batch_size]))
           for i in range(0, z.shape[0], self.batch_size)]
    if not out:
      return np.zeros((0, *self.spec.image_shape), np.float32)
    return np.concatenate(out)

  def sample(self, n: int, *, seed: int = 0, train_mode: bool = False) -> np.ndarray:
    """``n`` uint8 images ``[n, S, S, C]``."""
    x = self.generate(self.latents(n, seed), train_mode=train_mode)
    return np.clip(np.round((x + 1.0) * 127.5), 0, 255).astype(np.uint8)


@functools.lru_cache(maxsize=32)
def _generator_fns(name: str, attributes_json: str):
  """Jitted eval/train-mode applies of one generator architecture, shared by every
  :class:`Generator` of it (a new ``Generator`` per evaluation does not recompile)."""
  model = getattr(models, name)(**json.loads(attributes_json))
  return (jax.jit(lambda v, z: model.apply(v, z, train=False)),
          jax.jit(lambda v, z: model.apply(v, z, train=True, mutable=["batch_stats"])[0]))


def interpolate_latents(z0: Any, z1: Any, steps: int, *, spherical: bool = True) -> np.ndarray:
  """``[steps, D]`` latents from ``z0`` to ``z1``: spherical (slerp, which keeps the norm
  typical of a Gaussian sample) or linear."""
  z0, z1 = np.asarray(z0, np.float64), np.asarray(z1, np.float64)
  if z0.shape != z1.shape or z0.ndim != 1:
    raise ValueError(f"`z0` and `z1` must be vectors of one length, got {z0.shape} and "
                     f"{z1.shape}.")
  if isinstance(steps, bool) or int(steps) < 2:
    raise ValueError(f"`steps` must be >= 2, got {steps!r}.")
  t = np.linspace(0.0, 1.0, int(steps))[:, None]
  if not spherical:
    return ((1 - t) * z0 + t * z1).astype(np.float32)
  cos = np.dot(z0, z1) / max(np.linalg.norm(z0) * np.linalg.norm(z1), 1e-12)
  omega = np.arccos(np.clip(cos, -1.0, 1.0))
  if omega < 1e-6:
    return ((1 - t) * z0 + t * z1).astype(np.float32)
  return ((np.sin((1 - t) * omega) * z0 + np.sin(t * omega) * z1) / np.sin(omega)).astype(
      np.float32)


# ---------------------------------------------------------------------------------------------
# The Frechet distance on a committed MNIST classifier's features.

def gaussian_statistics(features: Any) -> tuple[np.ndarray, np.ndarray]:
  """``(mean [D], covariance [D, D])`` of ``features [N, D]`` in float64 (``N >= 2``)."""
  f = np.asarray(features, np.float64)
  if f.ndim != 2 or f.shape[0] < 2:
    raise ValueError(f"`features` must be [N >= 2, D], got shape {f.shape}.")
  if not np.all(np.isfinite(f)):
    raise ValueError("`features` contain NaN or inf.")
  return f.mean(0), np.atleast_2d(np.cov(f, rowvar=False))


def frechet_distance(mu1: Any, sigma1: Any, mu2: Any, sigma2: Any) -> float:
  """``|mu1 - mu2|^2 + tr(S1 + S2 - 2 (S1 S2)^(1/2))``: the Frechet (2-Wasserstein) distance
  between two Gaussians, squared.

  ``tr((S1 S2)^(1/2))`` is the sum of the square roots of the eigenvalues of the symmetric
  PSD matrix ``S1^(1/2) S2 S1^(1/2)`` (same eigenvalues as ``S1 S2``), computed with two
  symmetric eigendecompositions in float64: no complex ``sqrtm`` and no NaN for singular
  covariances. Negative round-off eigenvalues are clipped to 0; the result is >= 0.

  >>> round(frechet_distance([0.0], [[4.0]], [1.0], [[1.0]]), 6)   # (0-1)^2 + (2-1)^2
  2.0
  """
  mu1, mu2 = np.atleast_1d(np.asarray(mu1, np.float64)), np.atleast_1d(np.asarray(mu2,
                                                                                  np.float64))
  s1, s2 = np.atleast_2d(np.asarray(sigma1, np.float64)), np.atleast_2d(np.asarray(sigma2,
                                                                                   np.float64))
  d = mu1.shape[0]
  if mu1.shape != (d,) or mu2.shape != (d,) or s1.shape != (d, d) or s2.shape != (d, d):
    raise ValueError(f"shapes must be mu [D], sigma [D, D] for both: got {mu1.shape}, "
                     f"{s1.shape}, {mu2.shape}, {s2.shape}.")
  for name, a in (("mu1", mu1), ("sigma1", s1), ("mu2", mu2), ("sigma2", s2)):
    if not np.all(np.isfinite(a)):
      raise ValueError(f"`{name}` contains NaN or inf.")
  s1, s2 = (s1 + s1.T) / 2, (s2 + s2.T) / 2
  w, v = np.linalg.eigh(s1)
  root1 = (v * np.sqrt(np.clip(w, 0, None))) @ v.T
  m = root1 @ s2 @ root1
  eig = np.linalg.eigvalsh((m + m.T) / 2)
  tr_cross = np.sqrt(np.clip(eig, 0, None)).sum()
  value = float(np.sum((mu1 - mu2) ** 2) + np.trace(s1) + np.trace(s2) - 2 * tr_cross)
  return max(value, 0.0)


class FeatureNet:
  """A trained :class:`~jaxvision.models.MnistFeatureNet`: ``features(images)`` (its 128-D
  penultimate activations) and ``classify(images)``, on uint8 ``[N, 28, 28(, 1)]`` images or
  float images in ``[0, 1]``. 32 x 32 images are centre-cropped to 28 x 28."""

  def __init__(self, variables: Mapping[str, Any], spec: Mapping[str, Any] | None = None, *,
               batch_size: int = 1000):
    from jaxvision.classification import ClassifierSpec  # pylint: disable=import-outside-toplevel
    self.spec = ClassifierSpec.from_dict(spec) if spec is not None else ClassifierSpec(
        "MnistFeatureNet", 10)
    self.model = self.spec.build()
    self.variables = dict(variables)
    self.batch_size = int(batch_size)
    self._features = jax.jit(lambda v, x: self.model.apply(v, x, features=True))
    self._logits = jax.jit(lambda v, x: self.model.apply(v, x))

  @classmethod
  def load(cls, path: str | os.PathLike) -> "FeatureNet":
    variables, spec = weights_lib.load_weights(path)
    return cls(variables, spec)

  def _prepare(self, images: Any) -> np.ndarray:
    x = np.asarray(images)
    if x.ndim == 3:
      x = x[..., None]
    if x.ndim != 4 or x.shape[-1] != 1:
      raise ValueError(f"`images` must be greyscale [N, H, W(, 1)], got shape {x.shape}.")
    h, w = x.shape[1:3]
    if (h, w) not in ((28, 28), (32, 32)):
      raise ValueError(f"`images` must be 28 x 28 or 32 x 32, got {h} x {w}.")
    if h == 32:
      x = x[:, 2:30, 2:30]
    if np.issubdtype(x.dtype, np.integer):
      return x.astype(np.float32) / 255.0
    return x.astype(np.float32)

  def _run(self, fn, images):
    x = self._prepare(images)
    out = []
    for i in range(0, x.shape[0], self.batch_size):
      chunk = x[i:i + self.batch_size]
      pad = self.batch_size - chunk.shape[0]
      out.append(np.asarray(fn(self.variables, np.pad(chunk, ((0, pad), (0, 0), (0, 0),
                                                               (0, 0)))))[:chunk.shape[0]])
    return np.concatenate(out) if out else np.zeros((0, 0), np.float32)

  def features(self, images: Any) -> np.ndarray:
    return self._run(self._features, images)

  def classify(self, images: Any) -> np.ndarray:
    return self._run(self._logits, images).argmax(-1)


def reference_statistics(test_images: Any, train_images: Any,
                         feature_net: FeatureNet) -> dict[str, Any]:
  """What every :func:`generator_report` against ``test_images`` shares: the test features'
  Gaussian statistics and the floor (``train_images`` to ``test_images``)."""
  stats_test = gaussian_statistics(feature_net.features(test_images))
  floor = frechet_distance(*gaussian_statistics(feature_net.features(train_images)),
                           *stats_test)
  return {"test": stats_test, "floor": floor}


def generator_report(samples: Any, test_images: Any, train_images: Any,
                     feature_net: FeatureNet, *, reference: Mapping[str, Any] | None = None
                     ) -> dict[str, Any]:
  """The Frechet distance of ``samples`` to ``test_images``, its floor (``train_images`` to
  ``test_images``; pass as many training images as samples, the distance's bias depends on
  N), their ratio, and the samples' class histogram by ``feature_net``'s classifier.
  ``reference``: :func:`reference_statistics` of the same images, computed once for many
  reports (the images are then not read)."""
  if reference is None:
    reference = reference_statistics(test_images, train_images, feature_net)
  fd = frechet_distance(*gaussian_statistics(feature_net.features(samples)), *reference["test"])
  floor = reference["floor"]
  classes = feature_net.classify(samples)
  hist = np.bincount(classes, minlength=10)[:10] / max(len(classes), 1)
  return {"frechet_distance": fd, "floor": floor, "ratio": fd / max(floor, 1e-12),
          "class_fractions": [round(float(v), 4) for v in hist],
          "min_class_fraction": float(hist.min()), "num_samples": int(len(classes))}


# ---------------------------------------------------------------------------------------------
# Data.

def mnist_gan_source(images: Any, *, size: int = 28) -> ArraySource:
  """``{"image"}`` records of MNIST digits (uint8 ``[N, 28, 28(, 1)]``) at ``size`` 28 or 32
  (zero-padded by 2 pixels)."""
  x = np.asarray(images, np.uint8)
  if x.ndim == 4:
    x = x[..., 0]
  if x.ndim != 3 or x.shape[1:] != (28, 28):
    raise ValueError(f"`images` must be [N, 28, 28(, 1)], got shape {x.shape}.")
  if size == 32:
    x = np.pad(x, ((0, 0), (2, 2), (2, 2)))
  elif size != 28:
    raise ValueError(f"`size` must be 28 or 32, got {size!r}.")
  return ArraySource({"image": x[..., None]})


def coloured_mnist_source(images: Any, *, size: int = 64, seed: int = 0) -> ArraySource:
  """``{"image"}`` records: each digit scaled to ``size`` (bilinear), drawn in a random bright
  colour (the scene generator's hues) on a dark random-tinted background: uint8
  ``[N, size, size, 3]``."""
  from PIL import Image  # pylint: disable=import-outside-toplevel

  from jaxvision.data.scenes import _bright_colour  # pylint: disable=import-outside-toplevel
  x = np.asarray(images, np.uint8)
  if x.ndim == 4:
    x = x[..., 0]
  if x.ndim != 3:
    raise ValueError(f"`images` must be [N, H, W(, 1)], got shape {x.shape}.")
  if isinstance(size, bool) or int(size) < 8:
    raise ValueError(f"`size` must be an integer >= 8, got {size!r}.")
  rng = np.random.default_rng(seed)
  out = np.empty((x.shape[0], size, size, 3), np.uint8)
  for i, digit in enumerate(x):
    alpha = np.asarray(Image.fromarray(digit).resize((size, size), Image.BILINEAR),
                       np.float32)[..., None] / 255.0
    fg = _bright_colour(rng)
    bg = _bright_colour(rng) * rng.uniform(0.05, 0.25)
    out[i] = np.round(255 * (alpha * fg + (1 - alpha) * bg)).astype(np.uint8)
  return ArraySource({"image": out})


_IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp")


def image_folder_source(directory: str | os.PathLike, *, size: int = 64) -> ArraySource:
  """Every image under ``directory`` (recursively), centre-cropped to a square and resized to
  ``size``: ``{"image"}`` uint8 ``[N, size, size, 3]`` (a user's Pokemon folder, say)."""
  from PIL import Image  # pylint: disable=import-outside-toplevel
  root = pathlib.Path(directory)
  if not root.is_dir():
    raise FileNotFoundError(f"no image folder at {root}.")
  files = sorted(p for p in root.rglob("*") if p.suffix.lower() in _IMAGE_SUFFIXES)
  if not files:
    raise ValueError(f"{root} holds no images ({', '.join(_IMAGE_SUFFIXES)}).")
  out = []
  for f in files:
    try:
      with Image.open(f) as im:
        im = im.convert("RGBA")
        # Transparent backgrounds (common in sprite folders) become white.
        canvas = Image.new("RGBA", im.size, (255, 255, 255, 255))
        im = Image.alpha_composite(canvas, im).convert("RGB")
    except OSError as e:
      raise ValueError(f"{f}: not a readable image ({e}).") from None
    w, h = im.size
    s = min(w, h)
    im = im.crop(((w - s) // 2, (h - s) // 2, (w - s) // 2 + s, (h - s) // 2 + s))
    out.append(np.asarray(im.resize((size, size), Image.BICUBIC), np.uint8))
  return ArraySource({"image": np.stack(out)})


# ---------------------------------------------------------------------------------------------
# Training driver (what `python -m experiments.dcgan` runs).

def _find_ema(tree):
  if isinstance(tree, GeneratorEMAState):
    return tree.ema
  if isinstance(tree, (tuple, list)):
    for t in tree:
      found = _find_ema(t)
      if found is not None:
        return found
  return None


def generator_from_state(spec: GANSpec, state, *, ema: bool = False) -> Generator:
  """The :class:`Generator` of a :class:`~jaxvision.train.TrainState` trained by
  :func:`gan_task`; ``ema=True``: its averaged parameters (``ValueError`` without
  :func:`generator_ema` in the optimizer), with the same BatchNorm statistics."""
  params = state.params["generator"]
  if ema:
    params = _find_ema(state.opt_state)
    if params is None:
      raise ValueError("this run kept no generator average (GANConfig.ema_decay = 0).")
  variables = {"params": jax.device_get(params)}
  stats = jax.device_get(state.batch_stats.get("generator", {})) if state.batch_stats else {}
  if stats:
    variables["batch_stats"] = stats
  return Generator(spec, variables)


def sample_grid(generator: Generator, path: str | os.PathLike, *, title: str, rows: int = 8,
                cols: int = 8, seed: int = 1234, feature_net: FeatureNet | None = None) -> str:
  """Writes ``rows x cols`` samples (fixed latents: grids of one run are comparable) as a PNG;
  with ``feature_net`` each column is labelled with the classes it reads."""
  from jaxvision import viz  # pylint: disable=import-outside-toplevel
  images = generator.sample(rows * cols, seed=seed)
  col_labels = None
  if feature_net is not None and images.shape[-1] == 1:
    classes = feature_net.classify(images).reshape(rows, cols)
    col_labels = ["".join(str(int(c)) for c in classes[:, j]) for j in range(cols)]
    title += " (labels: classifier's reading)"
  viz.save_image_grid(path, images.reshape(rows, cols, *images.shape[1:]), title=title,
                      col_labels=col_labels, cell_inches=0.6 if images.shape[1] <= 32 else 0.9)
  return str(path)


def interpolation_grid(generator: Generator, path: str | os.PathLike, *, rows: int = 6,
                       steps: int = 10, seed: int = 99) -> str:
  """Writes ``rows`` spherical interpolations between random latents as a PNG."""
  from jaxvision import viz  # pylint: disable=import-outside-toplevel
  ends = generator.latents(2 * rows, seed)
  z = np.concatenate([interpolate_latents(ends[2 * r], ends[2 * r + 1], steps)
                      for r in range(rows)])
  x = generator.generate(z)
  images = np.clip(np.round((x + 1) * 127.5), 0, 255).astype(np.uint8)
  viz.save_image_grid(path, images.reshape(rows, steps, *images.shape[1:]),
                      title="Latent interpolation (slerp): each row walks from one random z to "
                            "another", col_labels=[f"t={t:.2f}" for t in
                                                   np.linspace(0, 1, steps)],
                      cell_inches=0.6 if images.shape[1] <= 32 else 0.9)
  return str(path)


def train_gan(cfg: GANConfig, workdir: str | os.PathLike, train_data, *, seed: int = 0,
              feature_net: FeatureNet | None = None, test_images: Any = None,
              floor_images: Any = None, progress: bool | None = None
              ) -> tuple[Generator, dict[str, Any]]:
  """Trains ``cfg`` on ``train_data`` (``{"image"}`` records) in ``workdir`` (resuming from its
  checkpoints) and returns ``(generator, results)``.

  Every ``cfg.eval_every`` steps and at the end it writes ``samples_step{N}.png`` and, with
  ``feature_net`` and ``test_images`` (and ``floor_images``, training images as many as
  ``cfg.eval_samples``), the Frechet distance of ``cfg.eval_samples`` samples: the learning
  curve goes to ``<workdir>/metrics.jsonl``.
  """
  from jaxvision.train import TrainConfig, train_and_evaluate  # pylint: disable=import-outside-toplevel
  workdir = os.fspath(workdir)
  os.makedirs(workdir, exist_ok=True)
  reference: dict[str, Any] = {}

  def evaluate(state):
    step = int(jax.device_get(state.step))
    gen = generator_from_state(cfg.spec, state, ema=bool(cfg.ema_decay))
    out: dict[str, Any] = {}
    if jax.process_index() == 0:
      sample_grid(gen, os.path.join(workdir, f"samples_step{step:06d}.png"),
                  title=f"Samples after {step} steps" + (" (EMA)" if cfg.ema_decay else ""),
                  feature_net=feature_net)
    if feature_net is not None and test_images is not None:
      floor = floor_images if floor_images is not None else test_images
      if not reference:
        reference.update(reference_statistics(test_images, floor, feature_net))
      rep = generator_report(gen.sample(cfg.eval_samples, seed=10_000 + step), test_images,
                             floor, feature_net, reference=reference)
      out = {"frechet_distance": rep["frechet_distance"], "floor": rep["floor"],
             "ratio": rep["ratio"], "min_class_fraction": rep["min_class_fraction"]}
      if cfg.ema_decay:
        raw = generator_from_state(cfg.spec, state).sample(cfg.eval_samples, seed=10_000 + step)
        out["frechet_distance_raw"] = generator_report(
            raw, test_images, floor, feature_net, reference=reference)["frechet_distance"]
    return out

  task = gan_task(cfg.spec, train_data, optimizer=make_gan_optimizer(cfg),
                  saturating=cfg.saturating, evaluate=evaluate)
  out = train_and_evaluate(TrainConfig(num_steps=cfg.steps, batch_size=cfg.batch_size,
                                       seed=seed, checkpoint_every=cfg.checkpoint_every,
                                       log_every=cfg.log_every, eval_every=cfg.eval_every,
                                       progress=progress), workdir, task=task)
  return generator_from_state(cfg.spec, out.state, ema=bool(cfg.ema_decay)), out.results
