"""Neural style transfer (Gatys et al. 2016), the notes' recipe, on any feature network.

The synthesised image is the only parameter. Its loss, on a feature network's activations:

* content: squared error between the image's and the content image's activations at one
  deep layer (``block5_conv2``);
* style: squared error between Gram matrices ``G = F^T F / (H W)`` of several layers
  (``block1_conv1 .. block5_conv1``), averaged over the layers;
* total variation: ``sum |x[i+1, j] - x[i, j]| + |x[i, j+1] - x[i, j]|`` (``tf.image``'s).

``normalize=True`` (default) divides each content/style term by its target's squared norm
(``||P||^2``, ``||A||^2``), so the weights mean the same on any network: ImageNet VGG-19,
random VGG-19 features or a small network trained here have activations of very different
scales. ``normalize=False`` is the TF tutorial's raw form (style 1e-2, content 1e4, TV 30 with
ImageNet weights).

Optimisers: Adam (the TF tutorial's ``Adam(0.02, b1 0.99, eps 0.1)``, pixels clipped to
``[0, 1]`` after each step) and L-BFGS (Gatys' choice; ``optax.lbfgs`` with its zoom line
search, on unconstrained pixels, clipped at the end).

Feature networks (:func:`vgg_feature_fn`): :class:`jaxvision.models.VGG` with user-supplied
weights (:func:`jaxvision.models.vgg.load_vgg_weights`), or with random He-normal filters
(``params=None``): random deep features carry texture statistics (Ustyuzhaninov et al. 2016);
``experiments/results/style_transfer.md`` compares them with a network trained here.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Mapping, Sequence

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxvision.dream import Features, split_features
from jaxvision.models import vgg as vgg_lib

__all__ = ["gram_matrix", "content_loss", "style_loss", "total_variation", "StyleConfig",
           "style_transfer", "vgg_feature_fn", "STYLE_LAYERS", "CONTENT_LAYER",
           "resize_image"]

FeatureFn = Callable[[jax.Array], Mapping[str, jax.Array]]
STYLE_LAYERS = ("block1_conv1", "block2_conv1", "block3_conv1", "block4_conv1", "block5_conv1")
CONTENT_LAYER = "block5_conv2"


def gram_matrix(features: jax.Array) -> jax.Array:
  """``[N, H, W, C] -> [N, C, C]``: ``F^T F / (H W)`` per image (symmetric, PSD)."""
  f = jnp.asarray(features, jnp.float32)
  if f.ndim != 4:
    raise ValueError(f"`features` must be [N, H, W, C], got shape {tuple(f.shape)}.")
  n, h, w, c = f.shape
  f = f.reshape(n, h * w, c)
  return jnp.einsum("npc,npd->ncd", f, f) / (h * w)


def content_loss(features: jax.Array, target: jax.Array) -> jax.Array:
  """Mean squared error between activations (0 at the content image)."""
  return jnp.mean((jnp.asarray(features, jnp.float32) - jnp.asarray(target, jnp.float32)) ** 2)


def style_loss(grams: Sequence[jax.Array], targets: Sequence[jax.Array]) -> jax.Array:
  """Mean over layers of the mean squared error between Gram matrices."""
  if len(grams) != len(targets) or not grams:
    raise ValueError(f"need one target per Gram matrix, got {len(grams)} and {len(targets)}.")
  return sum(jnp.mean((g - t) ** 2) for g, t in zip(grams, targets)) / len(grams)


def total_variation(images: jax.Array) -> jax.Array:
  """``[N, H, W, C] -> [N]``: summed absolute differences of neighbouring pixels (0 for a
  constant image)."""
  x = jnp.asarray(images, jnp.float32)
  if x.ndim != 4:
    raise ValueError(f"`images` must be [N, H, W, C], got shape {tuple(x.shape)}.")
  return (jnp.abs(x[:, 1:] - x[:, :-1]).sum((1, 2, 3))
          + jnp.abs(x[:, :, 1:] - x[:, :, :-1]).sum((1, 2, 3)))


def resize_image(image: Any, size: int | tuple[int, int]) -> np.ndarray:
  """An RGB image (uint8 or float in [0, 1]) -> float32 ``[H, W, 3]`` in ``[0, 1]`` of ``size``
  (an int: the longer side, aspect kept)."""
  x = np.asarray(image)
  if x.ndim == 2:
    x = np.stack([x] * 3, -1)
  if x.ndim != 3 or x.shape[-1] not in (3, 4):
    raise ValueError(f"`image` must be [H, W, 3], got shape {x.shape}.")
  x = x[..., :3]
  x = x.astype(np.float32) / 255.0 if np.issubdtype(x.dtype, np.integer) else x.astype(
      np.float32)
  if isinstance(size, int):
    h, w = x.shape[:2]
    s = size / max(h, w)
    size = (max(1, round(h * s)), max(1, round(w * s)))
  return np.asarray(jax.image.resize(jnp.asarray(x), (*size, 3), "bilinear")).clip(0, 1)


def vgg_feature_fn(params: Mapping[str, Any] | None = None, *, layout: str = "torchvision",
                   width: float = 1.0, pool: str = "avg", seed: int = 0,
                   blocks: Sequence[Sequence[int]] = vgg_lib.VGG19_BLOCKS,
                   last: str | None = None) -> tuple[Features, dict[str, Any]]:
  """``(features(images in [0, 1]) -> {layer: activation}, params)`` of a VGG (a
  :class:`jaxvision.dream.Features`): loaded
  ``params`` (with their ``layout``'s input normalisation) or, with ``params=None``, random
  He-normal filters from ``seed`` (torchvision normalisation)."""
  model = vgg_lib.VGG(blocks=blocks, width=width, pool=pool, last=last)
  if params is None:
    params = model.init(jax.random.key(seed), jnp.zeros((1, 32, 32, 3)))["params"]

  def apply(p, images):
    return model.apply({"params": p}, vgg_lib.vgg_preprocess(images, layout))

  return Features(apply, params), params


@dataclasses.dataclass(frozen=True)
class StyleConfig:
  """Weights, layers and optimiser of :func:`style_transfer`.

  Attributes:
    content_layer / style_layers: layer names of the feature function's dict.
    content_weight / style_weight / tv_weight: the loss weights (``tv_weight`` multiplies the
      total variation divided by the number of pixels when ``normalize``).
    normalize: divide content/style terms by their targets' squared norms (module docstring).
    optimizer: ``"adam"`` or ``"lbfgs"``; ``learning_rate`` / ``b1`` / ``eps`` for Adam.
    steps: optimiser steps (L-BFGS: iterations, each with a line search).
    init: ``"content"`` (start from the content image) or ``"noise"``.
  """

  content_layer: str = CONTENT_LAYER
  style_layers: tuple[str, ...] = STYLE_LAYERS
  content_weight: float = 1.0
  style_weight: float = 10.0
  tv_weight: float = 1.0
  normalize: bool = True
  optimizer: str = "adam"
  learning_rate: float = 0.02
  b1: float = 0.99
  eps: float = 0.1
  steps: int = 200
  init: str = "content"

  def __post_init__(self):
    if self.optimizer not in ("adam", "lbfgs"):
      raise ValueError(f"`optimizer` must be 'adam' or 'lbfgs', got {self.optimizer!r}.")
    if self.init not in ("content", "noise"):
      raise ValueError(f"`init` must be 'content' or 'noise', got {self.init!r}.")
    if isinstance(self.steps, bool) or int(self.steps) < 1:
      raise ValueError(f"`steps` must be >= 1, got {self.steps!r}.")
    for name in ("content_weight", "style_weight", "tv_weight"):
      if not float(getattr(self, name)) >= 0:
        raise ValueError(f"`{name}` must be >= 0, got {getattr(self, name)!r}.")
    if not self.style_layers:
      raise ValueError("`style_layers` must name at least one layer.")


def _as_image(x: Any, name: str) -> jax.Array:
  a = np.asarray(x)
  if a.ndim == 3:
    a = a[None]
  if a.ndim != 4 or a.shape[0] != 1 or a.shape[-1] != 3:
    raise ValueError(f"`{name}` must be one RGB image [H, W, 3], got shape {np.shape(x)}.")
  if np.issubdtype(a.dtype, np.integer):
    a = a.astype(np.float32) / 255.0
  a = a.astype(np.float32)
  if not np.all(np.isfinite(a)):
    raise ValueError(f"`{name}` contains NaN or inf.")
  return jnp.asarray(a)


def style_transfer(content: Any, style: Any, feature_fn: FeatureFn,
                   config: StyleConfig = StyleConfig(), *, seed: int = 0,
                   record_every: int = 10) -> tuple[np.ndarray, dict[str, list[float]]]:
  """Optimises an image with ``content``'s content and ``style``'s style.

  Args:
    content / style: RGB images ``[H, W, 3]`` (uint8 or float in ``[0, 1]``; any sizes).
    feature_fn: ``images [N, H, W, 3] in [0, 1] -> {layer: [N, h, w, c]}`` (e.g.
      :func:`vgg_feature_fn`'s).
    config: a :class:`StyleConfig`.
    seed: the noise of ``init="noise"``.
    record_every: history every this many steps.

  Returns:
    ``(image float32 [H, W, 3] in [0, 1], history)`` with the ``total``, ``content``,
    ``style`` and ``tv`` losses at the recorded ``step``s.
  """
  c = _as_image(content, "content")
  s = _as_image(style, "style")
  apply, net_params = split_features(feature_fn)
  feats_c, feats_s = jax.jit(apply)(net_params, c), jax.jit(apply)(net_params, s)
  missing = [n for n in (config.content_layer, *config.style_layers) if n not in feats_c]
  if missing:
    raise ValueError(f"the feature function has no layer(s) {missing}; it has "
                     f"{sorted(feats_c)}.")
  p = jax.lax.stop_gradient(feats_c[config.content_layer])
  a = [jax.lax.stop_gradient(gram_matrix(feats_s[n])) for n in config.style_layers]
  c_scale = 1.0 / (jnp.mean(p ** 2) + 1e-12) if config.normalize else 1.0
  s_scales = ([1.0 / (jnp.mean(t ** 2) + 1e-12) for t in a] if config.normalize
              else [1.0] * len(a))
  num_pixels = c.shape[1] * c.shape[2]
  tv_scale = 1.0 / num_pixels if config.normalize else 1.0

  def parts(x, net_params):
    f = apply(net_params, x)
    lc = content_loss(f[config.content_layer], p) * c_scale
    ls = sum(jnp.mean((gram_matrix(f[n]) - t) ** 2) * sc
             for n, t, sc in zip(config.style_layers, a, s_scales)) / len(a)
    ltv = total_variation(x)[0] * tv_scale
    total = (config.content_weight * lc + config.style_weight * ls + config.tv_weight * ltv)
    return total, (lc, ls, ltv)

  if config.init == "content":
    x0 = c
  else:
    x0 = jax.random.uniform(jax.random.key(seed), c.shape)
  history: dict[str, list[float]] = {"step": [], "total": [], "content": [], "style": [],
                                     "tv": []}

  def record(step, total, comps):
    history["step"].append(int(step))
    history["total"].append(float(total))
    for k, v in zip(("content", "style", "tv"), comps):
      history[k].append(float(v))

  every = max(1, int(record_every))
  steps = int(config.steps)
  if config.optimizer == "adam":
    tx = optax.adam(config.learning_rate, b1=config.b1, eps=config.eps)

    @jax.jit
    def adam_steps(x, opt_state, net_params):
      def body(carry, _):
        x, opt_state = carry
        (total, comps), g = jax.value_and_grad(parts, has_aux=True)(x, net_params)
        upd, opt_state = tx.update(g, opt_state, x)
        x = jnp.clip(optax.apply_updates(x, upd), 0.0, 1.0)
        return (x, opt_state), (total, *comps)
      return jax.lax.scan(body, (x, opt_state), None, length=every)

    x, opt_state = x0, tx.init(x0)
    done = 0
    while done < steps:
      (x, opt_state), (tot, lc, ls, ltv) = adam_steps(x, opt_state, net_params)
      done += every
      record(done - every, tot[0], (lc[0], ls[0], ltv[0]))
  else:
    tx = optax.lbfgs()

    @jax.jit
    def lbfgs_step(x, opt_state, net_params):
      value_fn = lambda y: parts(y, net_params)[0]  # noqa: E731
      value, g = optax.value_and_grad_from_state(value_fn)(x, state=opt_state)
      upd, opt_state = tx.update(g, opt_state, x, value=value, grad=g, value_fn=value_fn)
      return optax.apply_updates(x, upd), opt_state

    parts_jit = jax.jit(parts)
    x, opt_state = x0, tx.init(x0)
    for i in range(steps):
      if i % every == 0:
        tot, comps = parts_jit(x, net_params)
        record(i, tot, comps)
      x, opt_state = lbfgs_step(x, opt_state, net_params)
    x = jnp.clip(x, 0.0, 1.0)
  tot, comps = jax.jit(parts)(x, net_params)
  record(steps, tot, comps)
  return np.asarray(x[0]), history


def segmenter_feature_fn(path: Any) -> tuple[Features, list[str]]:
  """A feature function from a trained segmenter's backbone (an FCN weights file, e.g. the
  committed ``experiments/results/fcn_cpu_weights.msgpack``, trained here on coloured digit
  scenes): ``images in [0, 1] -> {"Conv_0" (the stem), ..., "stage0", "stage1"}`` in eval
  mode; returns the function and its layer names, shallow to deep."""
  import flax.linen as nn  # pylint: disable=import-outside-toplevel

  from jaxvision import models  # pylint: disable=import-outside-toplevel
  from jaxvision import weights as weights_lib  # pylint: disable=import-outside-toplevel
  variables, spec = weights_lib.load_weights(path)
  if spec.get("kind") != "segmenter" or "backbone" not in variables.get("params", {}):
    raise ValueError(f"{path}: not a segmenter with a backbone (kind {spec.get('kind')!r}).")
  model = getattr(models, spec["model"])(num_classes=int(spec["num_classes"]))
  backbone = model.backbone()
  bvars = {"params": variables["params"]["backbone"]}
  if "backbone" in variables.get("batch_stats", {}):
    bvars["batch_stats"] = variables["batch_stats"]["backbone"]

  def apply(variables, images):
    out, state = backbone.apply(variables, jnp.asarray(images, jnp.float32), train=False,
                                capture_intermediates=lambda mdl, _: isinstance(mdl, nn.Conv),
                                mutable=["intermediates"])
    feats = {name: v["__call__"][0] for name, v in state["intermediates"].items()
             if name.startswith("Conv_")}
    feats.update({f"stage{i}": s for i, s in enumerate(out["stages"])})
    return feats

  features = Features(apply, bvars)
  names = sorted(jax.eval_shape(features, jnp.zeros((1, 32, 32, 3)))
                 , key=lambda n: (n.startswith("stage"), int(n.split("_")[-1]) if "_" in n
                                  else int(n[5:])))
  return features, names
