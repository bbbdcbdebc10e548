"""The convolution kinds against PyTorch itself (run by hand with the bench extra; skipped
without torch): TorchConvTranspose == torch.nn.ConvTranspose2d for strides, paddings and
output paddings; DepthwiseConv == Conv2d(groups=C); dilated nn.Conv == Conv2d(dilation=d)."""

from __future__ import annotations

import flax.linen as nn
import jax.numpy as jnp
import numpy as np
import pytest

from jaxvision.models import layers

torch = pytest.importorskip("torch")


def _nchw(x):
  return torch.from_numpy(np.ascontiguousarray(np.asarray(x).transpose(0, 3, 1, 2)))


def _nhwc(t):
  return t.detach().numpy().transpose(0, 2, 3, 1)


@pytest.mark.parametrize("k,s,p,op", [(3, 1, 0, 0), (3, 2, 1, 1), (4, 2, 1, 0), (5, 3, 2, 2),
                                      (2, 2, 0, 0), (3, 2, 0, 1)])
def test_torch_conv_transpose_matches_pytorch(k, s, p, op):
  rng = np.random.default_rng(k * 10 + s)
  x = rng.normal(size=(2, 7, 6, 3)).astype(np.float32)
  ref = torch.nn.ConvTranspose2d(3, 5, k, stride=s, padding=p, output_padding=op)
  want = _nhwc(ref(_nchw(x)))
  params = {"conv_transpose": {"kernel": layers.torch_conv_transpose_kernel(ref.weight.detach().numpy()),
                               "bias": jnp.asarray(ref.bias.detach().numpy())}}
  got = layers.TorchConvTranspose(5, k, stride=s, padding=p, output_padding=op).apply(
      {"params": params}, jnp.asarray(x))
  assert got.shape == want.shape
  np.testing.assert_allclose(np.asarray(got), want, rtol=1e-4, atol=1e-5)


def test_depthwise_and_dilated_match_pytorch():
  rng = np.random.default_rng(0)
  x = rng.normal(size=(2, 9, 9, 4)).astype(np.float32)
  conv = torch.nn.Conv2d(4, 8, 3, padding=1, groups=4, bias=False)
  kernel = conv.weight.detach().numpy().transpose(2, 3, 1, 0)      # [3, 3, 1, 8]
  got = layers.DepthwiseConv((3, 3), multiplier=2, use_bias=False).apply(
      {"params": {"depthwise": {"kernel": jnp.asarray(kernel)}}}, jnp.asarray(x))
  np.testing.assert_allclose(np.asarray(got), _nhwc(conv(_nchw(x))), rtol=1e-4, atol=1e-5)
  dil = torch.nn.Conv2d(4, 3, 3, dilation=2, bias=False)
  got = nn.Conv(3, (3, 3), kernel_dilation=2, padding="VALID", use_bias=False).apply(
      {"params": {"kernel": jnp.asarray(dil.weight.detach().numpy().transpose(2, 3, 1, 0))}},
      jnp.asarray(x))
  np.testing.assert_allclose(np.asarray(got), _nhwc(dil(_nchw(x))), rtol=1e-4, atol=1e-5)
