"""Depthwise-separable convolution (MobileNet's block) vs PyTorch: forward + backward.

Depthwise and grouped convolutions are a known slow path of XLA (jax-ml/jax #23713, #26266,
#13800); this family measures it rather than hides it. The timed step is what training does:
``sum(block(x) * w)`` and its gradient with respect to the input and both kernels, under
``jit`` against ``torch.nn.Conv2d(groups=C)`` + ``Conv2d(1x1)`` and ``backward()`` on
NCHW tensors (inputs transposed once, outside the timing). Cases: a MobileNet-v1 layer
(32 images of 56 x 56 x 64 -> 128), the MNIST MobileNet's (128 x 14 x 14 x 64 -> 64), and,
for scale, the depthwise 3 x 3 conv alone and the full 3 x 3 conv the block replaces.
``check`` asserts the outputs and input gradients agree with PyTorch's. The subject is
jaxvision's default (on CPU the depthwise conv as fused shifted multiply-adds,
:func:`jaxvision.models.layers.depthwise_conv_shifts`); ``jaxvision grouped conv`` is XLA's
``feature_group_count = C`` convolution, for the ratio between the two.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from benchmarks import comparators
from benchmarks.common import Case
from jaxvision.models import layers


def _case(mode, kind, batch, hw, cin, cout, device):
  torch = comparators.torch()
  where = comparators.torch_device(device)
  if mode == "smoke":
    batch, hw, cin, cout = 2, 8, 4, 8
  rng = np.random.default_rng(0)
  x = rng.normal(size=(batch, hw, hw, cin)).astype(np.float32)
  dw = (rng.normal(size=(3, 3, 1, cin)) / 3).astype(np.float32)
  pw = (rng.normal(size=(1, 1, cin, cout)) / np.sqrt(cin)).astype(np.float32)
  full = (rng.normal(size=(3, 3, cin, cout)) / np.sqrt(9 * cin)).astype(np.float32)
  out_c = cin if kind == "depthwise" else cout
  w = rng.normal(size=(batch, hw, hw, out_c)).astype(np.float32)
  name = f"{kind} 3x3 fwd+bwd {batch}x{hw}x{hw}x{cin}" + ("" if kind == "depthwise"
                                                          else f"->{cout}")

  if kind == "separable":
    mod = layers.DepthwiseSeparableConv(cout, norm=False)
    params = {"depthwise": {"depthwise": {"kernel": jnp.asarray(dw),
                                          "bias": jnp.zeros(cin)}},
              "pointwise": {"kernel": jnp.asarray(pw), "bias": jnp.zeros(cout)}}
  elif kind == "depthwise":
    mod = layers.DepthwiseConv((3, 3))
    params = {"depthwise": {"kernel": jnp.asarray(dw), "bias": jnp.zeros(cin)}}
  else:
    import flax.linen as nn  # pylint: disable=import-outside-toplevel
    mod = nn.Conv(cout, (3, 3), padding="SAME")
    params = {"kernel": jnp.asarray(full), "bias": jnp.zeros(cout)}
  jx, jw = jnp.asarray(x), jnp.asarray(w)

  def make_step(m):
    return jax.jit(jax.value_and_grad(
        lambda p, a: jnp.sum(m.apply({"params": p}, a) * jw), argnums=(0, 1)))

  step = make_step(mod)

  def mine():
    return step(params, jx)

  impls, missing = {"jaxvision": mine}, []
  if kind != "full":  # the default (fused shifted multiply-adds on CPU) vs the grouped conv
    grouped = (layers.DepthwiseSeparableConv(cout, norm=False, implementation="conv")
               if kind == "separable" else layers.DepthwiseConv((3, 3), implementation="conv"))
    grouped_step = make_step(grouped)
    impls["jaxvision grouped conv"] = lambda: grouped_step(params, jx)
  if torch is not None and where is not None:
    nn_t = torch.nn
    if kind == "separable":
      net = nn_t.Sequential(nn_t.Conv2d(cin, cin, 3, padding=1, groups=cin),
                            nn_t.Conv2d(cin, cout, 1))
      net[0].weight.data = torch.from_numpy(dw.transpose(3, 2, 0, 1).copy())
      net[1].weight.data = torch.from_numpy(pw.transpose(3, 2, 0, 1).copy())
      net[0].bias.data.zero_()
      net[1].bias.data.zero_()
    elif kind == "depthwise":
      net = nn_t.Conv2d(cin, cin, 3, padding=1, groups=cin)
      net.weight.data = torch.from_numpy(dw.transpose(3, 2, 0, 1).copy())
      net.bias.data.zero_()
    else:
      net = nn_t.Conv2d(cin, cout, 3, padding=1)
      net.weight.data = torch.from_numpy(full.transpose(3, 2, 0, 1).copy())
      net.bias.data.zero_()
    net = net.to(where)
    tx = torch.from_numpy(x.transpose(0, 3, 1, 2).copy()).to(where)
    tw = torch.from_numpy(w.transpose(0, 3, 1, 2).copy()).to(where)

    def theirs():
      net.zero_grad(set_to_none=True)
      a = tx.detach().requires_grad_(True)
      loss = (net(a) * tw).sum()
      loss.backward()
      return loss, a.grad

    impls["pytorch"] = comparators.synced(theirs, device)
  else:
    missing.append("pytorch")

  def check(outs):
    (loss, (_, gx)) = outs["jaxvision"]
    if "pytorch" in outs:
      t_loss, t_gx = outs["pytorch"]
      t_gx = t_gx.cpu().numpy().transpose(0, 2, 3, 1)
      np.testing.assert_allclose(np.asarray(gx), t_gx, rtol=1e-3,
                                 atol=1e-3 * max(1.0, float(np.abs(t_gx).max())))
      np.testing.assert_allclose(float(loss), float(t_loss.detach()), rtol=1e-3,
                                 atol=1e-2 * max(1.0, abs(float(t_loss.detach()))))

  return Case(family="conv", name=name, size=batch, subject="jaxvision", impls=impls,
              goals={}, missing=missing, check=check, reps=7)


def cases(mode: str, device: str = "cpu") -> list[Case]:
  if mode == "smoke":
    return [_case(mode, "separable", 0, 0, 0, 0, device)]
  out = [_case(mode, "separable", 32, 56, 64, 128, device),
         _case(mode, "separable", 128, 14, 64, 64, device)]
  if mode == "full":
    out += [_case(mode, "depthwise", 32, 56, 64, 64, device),
            _case(mode, "full", 32, 56, 64, 128, device)]
  return out
