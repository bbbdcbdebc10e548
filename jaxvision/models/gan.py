"""Generative adversarial networks: the 1-D warm-up pair, DCGAN, and the MNIST feature network.

* :class:`LinearGenerator` / :class:`MLPDiscriminator`: the course notes' first GAN, a linear
  map of a scalar noise ``z`` (``x = a z + b``) against a 3-layer MLP, on a 1-D Gaussian.
* :class:`DCGANGenerator` / :class:`DCGANDiscriminator` (Radford et al. 2016): a dense
  projection of ``z`` to a ``base x base`` map, then 4 x 4 stride-2 transposed convolutions
  (PyTorch's ``ConvTranspose2d(k=4, s=2, p=1)``: each doubles the size) with BatchNorm and
  ReLU, ``tanh`` output in ``[-1, 1]``; the discriminator mirrors it with 4 x 4 stride-2
  convolutions, BatchNorm (not on the first layer) and LeakyReLU(0.2), and one logit.
  ``image_size = base * 2 ** len(features)``: ``(base=4, 4 features)`` is the notes' 64 x 64
  network, ``(base=7, 2 features)`` the 28 x 28 MNIST one, ``(base=4, 3 features)`` 32 x 32.
* :class:`MnistFeatureNet`: a small MNIST classifier whose 128-D penultimate features carry
  the Frechet distance of :mod:`jaxvision.gan` (``features=True`` returns them).

The variants are partials (``DCGANGenerator64``, ``DCGANGeneratorMNIST``, ...).
"""

from __future__ import annotations

import functools
from typing import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxvision.models.layers import StridedConv, TorchConvTranspose

__all__ = ["LinearGenerator", "MLPDiscriminator", "DCGANGenerator", "DCGANDiscriminator",
           "DCGANGenerator64", "DCGANDiscriminator64", "DCGANGeneratorMNIST",
           "DCGANDiscriminatorMNIST", "DCGANGeneratorTiny", "DCGANDiscriminatorTiny",
           "MnistFeatureNet", "MnistFeatureNetTiny"]

# DCGAN's initialisation: N(0, 0.02) for the convolutions, N(1, 0.02) for BatchNorm scales.
_DCGAN_INIT = nn.initializers.normal(0.02)


def _bn_scale_init(key, shape, dtype=jnp.float32):
  return 1.0 + 0.02 * jax.random.normal(key, shape, dtype)


class LinearGenerator(nn.Module):
  """``x = a * z + b`` for scalar noise ``z`` ``[N, 1]`` (the warm-up's generator)."""

  @nn.compact
  def __call__(self, z: jax.Array) -> jax.Array:
    return nn.Dense(1, kernel_init=nn.initializers.ones, name="affine")(z)


class MLPDiscriminator(nn.Module):
  """A 3-layer MLP ``[N, 1] -> [N]`` logits (ReLU hidden layers of ``hidden`` units)."""

  hidden: int = 32

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    h = nn.relu(nn.Dense(self.hidden)(x))
    h = nn.relu(nn.Dense(self.hidden)(h))
    return nn.Dense(1)(h)[:, 0]


class DCGANGenerator(nn.Module):
  """``z [N, latent_dim] -> images [N, S, S, channels]`` in ``[-1, 1]``,
  ``S = base * 2 ** len(features)``.

  Attributes:
    features: channels of the ``base x base`` projection and of each upsampled hidden map;
      the last transposed convolution maps ``features[-1]`` to ``channels``.
    base: size of the first map.
    channels: output channels (1 for MNIST, 3 for RGB).
    latent_dim: length of ``z``.
  """

  features: Sequence[int] = (256, 128, 64, 32)
  base: int = 4
  channels: int = 3
  latent_dim: int = 100

  @property
  def image_size(self) -> int:
    return self.base * 2 ** len(self.features)

  @nn.compact
  def __call__(self, z: jax.Array, train: bool = False) -> jax.Array:
    if z.ndim != 2 or z.shape[-1] != self.latent_dim:
      raise ValueError(f"`z` must be [N, {self.latent_dim}], got shape {tuple(z.shape)}.")
    norm = functools.partial(nn.BatchNorm, use_running_average=not train, momentum=0.9,
                             epsilon=1e-5, scale_init=_bn_scale_init)
    f0 = self.features[0]
    h = nn.Dense(self.base * self.base * f0, use_bias=False, kernel_init=_DCGAN_INIT,
                 name="project")(z)
    h = nn.relu(norm(name="project_bn")(h.reshape(-1, self.base, self.base, f0)))
    for i, f in enumerate(self.features[1:]):
      h = TorchConvTranspose(f, 4, stride=2, padding=1, use_bias=False, name=f"up{i}")(h)
      h = nn.relu(norm(name=f"up{i}_bn")(h))
    h = TorchConvTranspose(self.channels, 4, stride=2, padding=1, name="to_image")(h)
    return jnp.tanh(h)


class DCGANDiscriminator(nn.Module):
  """``images [N, S, S, C]`` in ``[-1, 1]`` -> ``[N]`` logits (real vs generated).

  4 x 4 stride-2 convolutions (padding 1) of ``features`` channels, LeakyReLU(0.2),
  BatchNorm after every convolution but the first, then one dense logit.
  ``norm=False`` drops the BatchNorm layers.
  """

  features: Sequence[int] = (64, 128, 256, 512)
  norm: bool = True

  @nn.compact
  def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
    if x.ndim != 4:
      raise ValueError(f"`x` must be [N, H, W, C], got shape {tuple(x.shape)}.")
    h = x
    for i, f in enumerate(self.features):
      h = StridedConv(f, (4, 4), strides=2, padding=((1, 1), (1, 1)), use_bias=i == 0 or
                      not self.norm, kernel_init=_DCGAN_INIT, name=f"down{i}")(h)
      if i > 0 and self.norm:
        h = nn.BatchNorm(use_running_average=not train, momentum=0.9, epsilon=1e-5,
                         scale_init=_bn_scale_init, name=f"down{i}_bn")(h)
      h = nn.leaky_relu(h, 0.2)
    return nn.Dense(1, kernel_init=_DCGAN_INIT, name="logit")(h.reshape(h.shape[0], -1))[:, 0]


# The notes' 64 x 64 RGB pair (Radford et al. use 1024-512-256-128; a quarter of the width
# trains on a CPU).
DCGANGenerator64 = functools.partial(DCGANGenerator, features=(256, 128, 64, 32), base=4,
                                     channels=3)
DCGANDiscriminator64 = functools.partial(DCGANDiscriminator, features=(32, 64, 128, 256))
# MNIST at 28 x 28: 7 x 7 x 128 -> 14 x 14 x 64 -> 28 x 28 x 1.
DCGANGeneratorMNIST = functools.partial(DCGANGenerator, features=(128, 64), base=7,
                                        channels=1, latent_dim=64)
DCGANDiscriminatorMNIST = functools.partial(DCGANDiscriminator, features=(64, 128))
# Tests: 28 x 28 greyscale, a few hundred parameters per layer.
DCGANGeneratorTiny = functools.partial(DCGANGenerator, features=(8, 4), base=7, channels=1,
                                       latent_dim=8)
DCGANDiscriminatorTiny = functools.partial(DCGANDiscriminator, features=(4, 8))


class MnistFeatureNet(nn.Module):
  """A small MNIST classifier (two 3 x 3 conv pairs with max pooling, a 128-unit dense layer,
  ``num_classes`` logits). ``features=True`` returns the 128-D penultimate activations the
  Frechet distance of :mod:`jaxvision.gan` is computed on; ``features="conv"`` stops after the
  convolutions (a fully convolutional net: any image size, as DeepDream needs)."""

  num_classes: int = 10
  width: int = 32
  hidden: int = 128

  @nn.compact
  def __call__(self, x: jax.Array, train: bool = False, features: bool | str = False
               ) -> jax.Array:
    del train  # no BatchNorm or dropout: the same function in training and evaluation
    h = x
    for i, f in enumerate((self.width, 2 * self.width)):
      h = nn.relu(nn.Conv(f, (3, 3), name=f"conv{i}a")(h))
      h = nn.relu(nn.Conv(f, (3, 3), name=f"conv{i}b")(h))
      h = nn.max_pool(h, (2, 2), (2, 2))
    if features == "conv":
      return h
    h = nn.relu(nn.Dense(self.hidden, name="hidden")(h.reshape(h.shape[0], -1)))
    if features:
      return h
    return nn.Dense(self.num_classes, name="logits")(h)


MnistFeatureNetTiny = functools.partial(MnistFeatureNet, width=4, hidden=16)
