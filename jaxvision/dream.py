"""DeepDream (Mordvintsev et al. 2015), the TF tutorial's recipe, on any network.

Gradient *ascent* on the image to raise the mean activation of chosen layers:

* each step: roll the image by a random shift (up to ``max_shift`` pixels; hides the tiling
  artefacts of strided layers), take the gradient of the objective, roll it back, divide it by
  its standard deviation (a step size independent of the layer's scale), and add
  ``step_size`` times it; pixels stay in ``[0, 1]``;
* octaves: the image is processed at ``octave_scale ** -k`` of its size for
  ``k = octaves - 1 .. 0``, each octave starting from the previous one's result upsampled, so
  patterns appear at several scales.

:func:`layer_feature_fn` turns any flax module into a feature function (``{layer name:
activation}``, flax's ``capture_intermediates``), e.g. the project's trained MNIST classifier;
:func:`jaxvision.style.vgg_feature_fn` gives VGG's layers.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any, Callable, Mapping, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

__all__ = ["DreamConfig", "Features", "split_features", "deepdream", "dream_objective",
           "layer_feature_fn"]

FeatureFn = Callable[[jax.Array], Mapping[str, jax.Array]]


@dataclasses.dataclass(eq=False)
class Features:
  """A feature function with explicit parameters: ``apply(params, images) -> {layer:
  activation}``. Calling it uses ``params``. :func:`deepdream` and
  :func:`jaxvision.style.style_transfer` pass ``params`` to their compiled steps as arguments
  (a plain closure would embed the weights in the program as constants, which XLA then
  tries to constant-fold: slow compiles for big networks)."""

  apply: Callable[[Any, jax.Array], Mapping[str, jax.Array]]
  params: Any

  def __call__(self, images: jax.Array) -> Mapping[str, jax.Array]:
    return self.apply(self.params, images)


def split_features(feature_fn) -> tuple[Callable[[Any, jax.Array], Mapping[str, jax.Array]], Any]:
  """``(apply(params, images), params)`` of a :class:`Features` or of a plain callable
  (``params`` None)."""
  if isinstance(feature_fn, Features):
    return feature_fn.apply, feature_fn.params
  if not callable(feature_fn):
    raise TypeError(f"`feature_fn` must be callable, got {type(feature_fn).__name__}.")
  return (lambda _, images: feature_fn(images)), None


@dataclasses.dataclass(frozen=True)
class DreamConfig:
  """Octaves and steps of :func:`deepdream`.

  Attributes:
    layers: the layers whose mean activation is maximised (summed over layers).
    octaves / octave_scale: number of scales and the ratio between them (1.3-1.4).
    steps: ascent steps per octave; ``step_size``: the step on the std-normalised gradient.
    max_shift: the random roll's largest shift in pixels (0: none).
  """

  layers: tuple[str, ...]
  octaves: int = 3
  octave_scale: float = 1.3
  steps: int = 20
  step_size: float = 0.01
  max_shift: int = 16

  def __post_init__(self):
    if not self.layers:
      raise ValueError("`layers` must name at least one layer.")
    for name in ("octaves", "steps"):
      if isinstance(getattr(self, name), bool) or int(getattr(self, name)) < 1:
        raise ValueError(f"`{name}` must be >= 1, got {getattr(self, name)!r}.")
    if not float(self.octave_scale) >= 1.0:
      raise ValueError(f"`octave_scale` must be >= 1, got {self.octave_scale!r}.")
    if not float(self.step_size) > 0:
      raise ValueError(f"`step_size` must be > 0, got {self.step_size!r}.")
    if int(self.max_shift) < 0:
      raise ValueError(f"`max_shift` must be >= 0, got {self.max_shift!r}.")


def dream_objective(feature_fn: FeatureFn, images: jax.Array, layers: Sequence[str]
                    ) -> jax.Array:
  """Sum over ``layers`` of the mean activation (what :func:`deepdream` raises)."""
  feats = feature_fn(images)
  missing = [n for n in layers if n not in feats]
  if missing:
    raise ValueError(f"the feature function has no layer(s) {missing}; it has {sorted(feats)}.")
  return sum(jnp.mean(feats[n]) for n in layers)


def deepdream(image: Any, feature_fn: FeatureFn, config: DreamConfig, *, seed: int = 0
              ) -> tuple[np.ndarray, list[dict[str, float]]]:
  """Dreams ``image`` (``[H, W, C]``, uint8 or float in ``[0, 1]``).

  Returns:
    ``(image float32 [H, W, C] in [0, 1], per-octave records)``: each record has the octave's
    ``size`` and the objective at its ``start`` and ``end``.
  """
  x = np.asarray(image)
  if x.ndim != 3:
    raise ValueError(f"`image` must be [H, W, C], got shape {x.shape}.")
  if np.issubdtype(x.dtype, np.integer):
    x = x.astype(np.float32) / 255.0
  x = jnp.asarray(x, jnp.float32)
  if not bool(jnp.all(jnp.isfinite(x))):
    raise ValueError("`image` contains NaN or inf.")
  h, w, c = x.shape
  layers = tuple(config.layers)
  apply, params = split_features(feature_fn)
  objective, ascend = _dream_fns(apply, layers, int(config.steps), float(config.step_size),
                                 int(config.max_shift))

  records = []
  key = jax.random.key(int(seed))
  for k in range(int(config.octaves) - 1, -1, -1):
    size = (max(8, round(h / config.octave_scale ** k)), max(8, round(w / config.octave_scale ** k)))
    x = jax.image.resize(x, (*size, c), "bilinear")
    start = float(objective(params, x))
    key, sub = jax.random.split(key)
    x = ascend(params, x, sub)
    records.append({"size": list(size), "start": start, "end": float(objective(params, x))})
  return np.asarray(x), records


@functools.lru_cache(maxsize=32)
def _dream_fns(apply, layers, steps, step_size, shift):
  """Jitted objective and ascent of one network and recipe, shared by every call (a CLI that
  dreams many images compiles once per image size)."""

  def obj(p, im):
    return dream_objective(lambda x: apply(p, x), im[None], layers)

  grad = jax.grad(obj, argnums=1)

  @jax.jit
  def ascend(p, img, key):
    def body(img, k):
      dy, dx = jax.random.randint(k, (2,), -shift, shift + 1) if shift else (0, 0)
      rolled = jnp.roll(img, (dy, dx), axis=(0, 1))
      g = jnp.roll(grad(p, rolled), (-dy, -dx), axis=(0, 1))
      g = g / (jnp.std(g) + 1e-8)
      return jnp.clip(img + step_size * g, 0.0, 1.0), None
    img, _ = jax.lax.scan(body, img, jax.random.split(key, steps))
    return img

  return jax.jit(obj), ascend


def layer_feature_fn(model: nn.Module, variables: Mapping[str, Any],
                     layers: Sequence[str] | None = None, *,
                     preprocess: Callable[[jax.Array], jax.Array] | None = None,
                     activation: Callable[[jax.Array], jax.Array] | None = None,
                     **apply_kwargs) -> Features:
  """The :class:`Features` of any flax module: ``images -> {name: output}`` for its direct
  submodules (``layers``: those names; ``None``: all), via ``capture_intermediates``.
  ``preprocess`` maps the ``[0, 1]`` images to the model's input first; ``activation`` (e.g.
  ``jax.nn.relu`` for convolutions followed by one) is applied to the captured outputs;
  ``apply_kwargs`` go to ``model.apply``."""
  wanted = None if layers is None else set(layers)

  def apply(params, images):
    x = images if preprocess is None else preprocess(images)
    _, state = model.apply(params, x, capture_intermediates=True, mutable=["intermediates"],
                           **apply_kwargs)
    out = {}
    for name, v in state["intermediates"].items():
      if name == "__call__" or (wanted is not None and name not in wanted):
        continue
      if isinstance(v, Mapping) and "__call__" in v:
        out[name] = v["__call__"][0] if activation is None else activation(v["__call__"][0])
    return out

  return Features(apply, dict(variables))
