"""CapsNet (Sabour, Frosst & Hinton 2017, "Dynamic Routing Between Capsules").

    model = CapsNetSmall()
    variables = model.init(key, images)                  # images [B, 28, 28, 1] in [0, 1]
    lengths = model.apply(variables, images)             # [B, 10], class "probabilities"
    loss, (metrics, _) = losses(model, variables["params"], {}, images, labels)

The network: a ReLU convolution, *primary capsules* (a strided convolution whose channels are
cut into ``primary_types`` capsule maps of ``primary_dim``-vectors, each squashed), and one
*digit capsule* per class whose input is every primary capsule's prediction ``u_hat = W_ij
u_i`` combined by :func:`dynamic_routing`. A capsule's length is the probability that its
entity is present (:func:`margin_loss`); in training a decoder reconstructs the image from the
true class's capsule (the others masked to zero), weighted 0.0005 on the summed squared error.

Two details the ports got wrong and this module tests:

* :func:`squash` is finite with a finite gradient at the zero vector: its norm is computed
  with the double-``where`` idiom, so ``squash(0) = 0`` and its gradient there is 0 (the true
  derivative), not ``0 / 0`` (ageron/handson-ml #173);
* in :func:`dynamic_routing` the agreement updates (every iteration but the last) see the
  predictions through ``stop_gradient``, so gradients reach ``u_hat`` only through the final
  weighted sum with the coupling coefficients held constant (naturomics/CapsNet-Tensorflow
  #33 found the leak).

Variants: :data:`CapsNetPaper` is the paper's MNIST network (256 9 x 9 filters, 32 x 8-D
primary capsules, 16-D digit capsules, decoder 512-1024-784: 8.2 M parameters);
:data:`CapsNetSmall` (128 filters, 16 x 8-D primary capsules) is the recipe sized for a 2-core
CPU; :data:`CapsNetTiny` is for tests.
"""

from __future__ import annotations

import functools
from typing import Any, Mapping

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxvision.models import layers

__all__ = ["squash", "safe_norm", "dynamic_routing", "margin_loss", "mask_capsules", "CapsNet",
           "CapsNetPaper", "CapsNetMedium", "CapsNetSmall", "CapsNetTiny", "losses",
           "RECONSTRUCTION_WEIGHT", "reconstructions", "perturbed_reconstructions"]

RECONSTRUCTION_WEIGHT = 0.0005  # on the per-image *sum* of squared pixel errors (the paper)


def safe_norm(s: jax.Array, axis: int = -1, keepdims: bool = False) -> jax.Array:
  """The Euclidean norm along ``axis`` with gradient 0 (not NaN) at the zero vector."""
  sq = jnp.sum(jnp.square(s), axis=axis, keepdims=keepdims)
  nonzero = sq > 0
  return jnp.where(nonzero, jnp.sqrt(jnp.where(nonzero, sq, 1.0)), 0.0)


def squash(s: jax.Array, axis: int = -1) -> jax.Array:
  """``v = |s|^2 / (1 + |s|^2) * s / |s|`` along ``axis`` (eq. 1): the direction kept, the
  length mapped into ``[0, 1)``. ``squash(0) = 0`` with a zero (finite) gradient.

  >>> [round(float(v), 4) for v in squash(jnp.array([3.0, 4.0]))]   # |s| = 5 -> 25/26
  [0.5769, 0.7692]
  >>> jax.grad(lambda s: squash(s).sum())(jnp.zeros(3)).tolist()
  [0.0, 0.0, 0.0]
  """
  norm = safe_norm(s, axis=axis, keepdims=True)
  return s * (norm / (1.0 + jnp.square(norm)))


def dynamic_routing(u_hat: jax.Array, iterations: int = 3) -> tuple[jax.Array, jax.Array]:
  """Routing by agreement (Procedure 1 of the paper).

  Args:
    u_hat: ``[B, I, J, D]`` the prediction of each input capsule ``i`` for each output
      capsule ``j``.
    iterations: ``r >= 1``; the logits start at 0, so ``r = 1`` is a uniform average.

  Returns:
    ``(v, c)``: the output capsules ``[B, J, D]`` (squashed) and the final coupling
    coefficients ``[B, I, J]`` (a softmax over ``j``).

  Gradients flow to ``u_hat`` only through the last ``s_j = sum_i c_ij u_hat_ij``, with
  ``c`` a constant: the agreement of earlier iterations is computed on
  ``stop_gradient(u_hat)``.
  """
  if int(iterations) < 1:
    raise ValueError(f"`iterations` must be >= 1, got {iterations!r}.")
  if u_hat.ndim != 4:
    raise ValueError(f"`u_hat` must be [B, I, J, D], got shape {u_hat.shape}.")
  frozen = jax.lax.stop_gradient(u_hat)
  num_out = u_hat.shape[2]
  # b starts at 0, so the first couplings are uniform: written as a constant 1/J rather
  # than softmax(zeros) (which XLA would constant-fold over the whole [B, I, J] array).
  b = None
  for _ in range(int(iterations) - 1):
    if b is None:
      v = squash(jnp.sum(frozen, axis=1) / num_out)
      b = jnp.einsum("bijd,bjd->bij", frozen, v)
    else:
      c = jax.nn.softmax(b, axis=-1)
      v = squash(jnp.einsum("bij,bijd->bjd", c, frozen))
      b = b + jnp.einsum("bijd,bjd->bij", frozen, v)
  if b is None:
    c = jnp.full(u_hat.shape[:3], 1.0 / num_out, u_hat.dtype)
  else:
    c = jax.lax.stop_gradient(jax.nn.softmax(b, axis=-1))
  v = squash(jnp.einsum("bij,bijd->bjd", c, u_hat))
  return v, c


def margin_loss(lengths: jax.Array, labels: jax.Array, *, m_plus: float = 0.9,
                m_minus: float = 0.1, lam: float = 0.5) -> jax.Array:
  """Eq. 4, per image: ``sum_k T_k max(0, m+ - |v_k|)^2 + lam (1 - T_k) max(0, |v_k| - m-)^2``.

  ``lengths [B, K]``, ``labels [B]`` ints; returns ``[B]``.

  >>> margin_loss(jnp.array([[0.95, 0.05]]), jnp.array([0])).tolist()   # both margins met
  [0.0]
  >>> round(float(margin_loss(jnp.array([[0.5, 0.5]]), jnp.array([0]))[0]), 6)  # .4^2 + .5 .4^2
  0.24
  """
  t = jax.nn.one_hot(labels, lengths.shape[-1], dtype=lengths.dtype)
  present = t * jnp.square(jnp.maximum(0.0, m_plus - lengths))
  absent = lam * (1.0 - t) * jnp.square(jnp.maximum(0.0, lengths - m_minus))
  return jnp.sum(present + absent, axis=-1)


def mask_capsules(capsules: jax.Array, index: jax.Array) -> jax.Array:
  """``[B, K, D]`` capsules -> ``[B, K * D]`` with every capsule but ``index [B]`` zeroed
  (the decoder's input)."""
  keep = jax.nn.one_hot(index, capsules.shape[1], dtype=capsules.dtype)
  return (capsules * keep[..., None]).reshape(capsules.shape[0], -1)


class CapsNet(nn.Module):
  """Conv -> primary capsules -> routed class capsules (+ a reconstruction decoder).

  ``__call__(images, *, train=False)`` returns the class capsules' lengths ``[B, K]``;
  :meth:`capsules` returns the capsules themselves ``[B, K, D]``; :meth:`reconstruct`
  decodes masked capsules to images. Images are ``[B, H, W, C]`` floats in ``[0, 1]`` (the
  decoder ends in a sigmoid); any size whose primary grid is at least 1 x 1.

  Attributes:
    num_classes: class capsules.
    conv_features / conv_kernel: the first (ReLU, stride 1, VALID) convolution.
    primary_types / primary_dim / primary_kernel / primary_stride: the primary capsule
      layer: ``primary_types`` maps of ``primary_dim``-D capsules from one VALID conv.
    capsule_dim: dimension of the class capsules.
    routing_iterations: of :func:`dynamic_routing`.
    decoder: hidden widths of the reconstruction MLP.
    image_shape: ``(H, W, C)`` of the inputs (and of the reconstructions).
  """

  num_classes: int = 10
  conv_features: int = 256
  conv_kernel: int = 9
  primary_types: int = 32
  primary_dim: int = 8
  primary_kernel: int = 9
  primary_stride: int = 2
  capsule_dim: int = 16
  routing_iterations: int = 3
  decoder: tuple[int, ...] = (512, 1024)
  image_shape: tuple[int, int, int] = (28, 28, 1)

  def setup(self):
    self.conv = nn.Conv(self.conv_features, (self.conv_kernel,) * 2, padding="VALID",
                        name="conv1")
    # An nn.Conv's parameters, its input gradient computed without the strided-conv
    # transpose that XLA:CPU runs 20x slower (jaxvision.models.layers.space_to_depth_conv).
    self.primary = layers.StridedConv(self.primary_types * self.primary_dim,
                                      (self.primary_kernel,) * 2, strides=self.primary_stride,
                                      padding="VALID", name="primary")
    self.decoder_layers = [nn.Dense(w, name=f"decoder_{i}") for i, w in enumerate(self.decoder)]
    h, w, c = self.image_shape
    self.decoder_out = nn.Dense(h * w * c, name="decoder_out")
    gh, gw = self._primary_grid(h, w)
    if gh < 1 or gw < 1:
      raise ValueError(f"`image_shape` {tuple(self.image_shape)} is too small for a "
                       f"{self.conv_kernel} x {self.conv_kernel} conv and "
                       f"{self.primary_kernel} x {self.primary_kernel} primary capsules.")
    self.routing_weights = self.param(
        "routing_weights", nn.initializers.normal(0.01),
        (gh * gw * self.primary_types, self.num_classes, self.capsule_dim, self.primary_dim),
        jnp.float32)

  def _primary_grid(self, h: int, w: int) -> tuple[int, int]:
    h1, w1 = h - self.conv_kernel + 1, w - self.conv_kernel + 1
    return ((h1 - self.primary_kernel) // self.primary_stride + 1,
            (w1 - self.primary_kernel) // self.primary_stride + 1)

  def primary_capsules(self, images: jax.Array) -> jax.Array:
    """``[B, I, primary_dim]``: every primary capsule, squashed (``I = grid * types``)."""
    if images.ndim != 4 or tuple(images.shape[1:]) != tuple(self.image_shape):
      raise ValueError(f"`images` must be [B, {', '.join(map(str, self.image_shape))}] "
                       f"(the model's image_shape), got shape {tuple(images.shape)}.")
    x = nn.relu(self.conv(images))
    x = self.primary(x)
    b = x.shape[0]
    return squash(x.reshape(b, -1, self.primary_dim))

  def capsules(self, images: jax.Array) -> tuple[jax.Array, jax.Array]:
    """``(v [B, K, capsule_dim], c [B, I, K])``: the class capsules and the couplings."""
    u = self.primary_capsules(images)
    u_hat = jnp.einsum("ijdc,bic->bijd", self.routing_weights.astype(u.dtype), u)
    return dynamic_routing(u_hat, self.routing_iterations)

  def reconstruct(self, capsules: jax.Array, index: jax.Array) -> jax.Array:
    """Images ``[B, H, W, C]`` in ``[0, 1]`` decoded from the capsule ``index [B]`` of each
    ``capsules [B, K, D]`` (the others masked)."""
    x = mask_capsules(capsules, index)
    for layer in self.decoder_layers:
      x = nn.relu(layer(x))
    return nn.sigmoid(self.decoder_out(x)).reshape(capsules.shape[0], *self.image_shape)

  def __call__(self, images: jax.Array, *, train: bool = False) -> jax.Array:
    del train  # no dropout / BatchNorm
    v, _ = self.capsules(images)
    if self.is_initializing():  # create the decoder's parameters too
      self.reconstruct(v, jnp.zeros(v.shape[0], jnp.int32))
    return safe_norm(v, axis=-1)


CapsNetPaper = functools.partial(CapsNet)
CapsNetSmall = functools.partial(CapsNet, conv_features=64, primary_types=16)
CapsNetMedium = functools.partial(CapsNet, conv_features=128, primary_types=16)
CapsNetTiny = functools.partial(CapsNet, conv_features=16, conv_kernel=5, primary_types=4,
                                primary_dim=4, primary_kernel=5, capsule_dim=8, decoder=(32,))


def losses(model: CapsNet, params: Mapping[str, Any], batch_stats: Mapping[str, Any],
           images: jax.Array, labels: jax.Array, rng: jax.Array | None = None, *,
           reconstruction_weight: float = RECONSTRUCTION_WEIGHT, m_plus: float = 0.9,
           m_minus: float = 0.1, lam: float = 0.5):
  """The training objective, in the loop's ``loss_fn`` form: ``(loss, (metrics,
  batch_stats))``. ``loss = mean_b margin_loss + reconstruction_weight * mean_b sum_pixels
  (reconstruction - image)^2``, the decoder fed the *true* class's capsule."""
  del rng

  def apply(mdl, x, y):
    v, _ = mdl.capsules(x)
    return safe_norm(v, axis=-1), mdl.reconstruct(v, y)

  lengths, recon = model.apply({"params": params}, images, labels, method=apply)
  margin = jnp.mean(margin_loss(lengths, labels, m_plus=m_plus, m_minus=m_minus, lam=lam))
  target = images.reshape(recon.shape).astype(recon.dtype)
  sse = jnp.mean(jnp.sum(jnp.square(recon - target), axis=(1, 2, 3)))
  loss = margin + reconstruction_weight * sse
  accuracy = jnp.mean((jnp.argmax(lengths, -1) == labels).astype(jnp.float32))
  metrics = {"margin": margin, "reconstruction_sse": sse, "accuracy": accuracy}
  return loss, (metrics, batch_stats)



def reconstructions(model: CapsNet, variables: Mapping[str, Any], images: jax.Array
                    ) -> tuple[jax.Array, jax.Array]:
  """``(predicted classes [B], reconstructions [B, H, W, C])`` decoded from each image's
  *predicted* (longest) capsule, as at test time."""
  def apply(mdl, x):
    v, _ = mdl.capsules(x)
    pred = jnp.argmax(safe_norm(v, axis=-1), axis=-1)
    return pred, mdl.reconstruct(v, pred)
  return model.apply(variables, images, method=apply)


def perturbed_reconstructions(model: CapsNet, variables: Mapping[str, Any], image: jax.Array,
                              offsets: Any) -> tuple[int, jax.Array]:
  """What each dimension of the predicted capsule encodes (the paper's Fig. 4): ``(class,
  images [D, len(offsets), H, W, C])``, dimension ``d`` of ``image``'s predicted capsule
  shifted by each offset (the paper: -0.25 to 0.25 in steps of 0.05) and decoded."""
  offsets = jnp.asarray(offsets, jnp.float32)

  def apply(mdl, x):
    v, _ = mdl.capsules(x[None])
    pred = jnp.argmax(safe_norm(v, axis=-1), axis=-1)[0]
    k, d = v.shape[1:]
    deltas = jnp.eye(d, dtype=v.dtype)[:, None, :] * offsets[None, :, None]   # [D, O, D]
    caps = jnp.broadcast_to(v[0], (d, offsets.shape[0], k, d))
    caps = caps.at[:, :, pred, :].add(deltas).reshape(-1, k, d)
    out = mdl.reconstruct(caps, jnp.full(caps.shape[0], pred))
    return pred, out.reshape(d, offsets.shape[0], *out.shape[1:])

  pred, out = model.apply(variables, jnp.asarray(image, jnp.float32), method=apply)
  return int(pred), out
