"""IIC: the loss (forward + backward) and a whole training step, vs NumPy and PyTorch.

* ``iic_loss fwd+bwd B x C``: the value and gradient of the IIC loss for a pair of ``[B, C]``
  softmax outputs; jaxvision (XLA path) vs the same formula in PyTorch autograd, and the
  float64 NumPy oracle (forward only: it has no gradient, so its row is not a like-for-like
  ratio).
* ``IIC train step``: the ``cpu`` recipe's step (16-32-64-128 VGG trunk with BatchNorm, 5
  heads of 10 and 5 overclustering heads of 50, IIC loss on both, Adam) on the same pair of
  precomputed views, jaxvision (flax + optax under ``jit``) vs the same architecture in
  PyTorch eager mode (``torch.optim.Adam``). The time ratio is the images/s ratio.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax

from benchmarks import comparators
from benchmarks.common import Case
from jaxvision import compat, models, ops
from jaxvision.reference import iic as ref


def _softmax_pair(batch: int, classes: int, seed: int = 0):
  rng = np.random.default_rng(seed)
  logits = rng.normal(0, 2, (2, batch, classes)).astype(np.float32)
  p = np.exp(logits - logits.max(-1, keepdims=True))
  p /= p.sum(-1, keepdims=True)
  return p[0], p[1]


def _torch_iic_loss(torch, z, zb, eps=ref.EPS):
  p = z.T @ zb
  p = (p + p.T) / 2
  p = p / p.sum()
  pi, pj = p.sum(1), p.sum(0)
  p, pi, pj = p.clamp_min(eps), pi.clamp_min(eps), pj.clamp_min(eps)
  return -(p * (p.log() - pi.log()[:, None] - pj.log()[None, :])).sum()


def loss_cases(mode: str, device: str = "cpu") -> list[Case]:
  torch = comparators.torch_for(device)
  where = "cuda" if device == "gpu" else "cpu"
  shapes = {"smoke": ((64, 10),), "quick": ((1000, 10),),
            "full": ((1000, 10), (1000, 50), (4096, 50))}[mode]
  out = []
  for batch, classes in shapes:
    z, zb = _softmax_pair(batch, classes)
    jz, jzb = jnp.asarray(z), jnp.asarray(zb)
    def grad_of(implementation=None):
      return jax.jit(jax.value_and_grad(
          lambda a, b: ops.iic_loss(a, b, implementation=implementation), argnums=(0, 1)))

    if device == "gpu":
      # The GPU goal is about the Pallas kernel; the XLA path is a comparator.
      subject = "jaxvision-pallas"
      impls = {subject: functools.partial(grad_of("pallas"), jz, jzb),
               "jaxvision-xla": functools.partial(grad_of("xla"), jz, jzb)}
    else:
      subject = "jaxvision"
      impls = {subject: functools.partial(grad_of(), jz, jzb)}
    impls["numpy-reference (fwd only)"] = functools.partial(ref.iic_loss, z, zb)
    missing = []
    if torch is not None:
      tz = torch.from_numpy(z).to(where).requires_grad_()
      tzb = torch.from_numpy(zb).to(where).requires_grad_()

      def torch_step(tz=tz, tzb=tzb):
        tz.grad = tzb.grad = None
        loss = _torch_iic_loss(torch, tz, tzb)
        loss.backward()
        comparators.sync(device)
        return loss.detach().cpu(), tz.grad.cpu(), tzb.grad.cpu()

      impls["torch"] = torch_step
    else:
      missing.append("torch")

    def check(outs, z=z, zb=zb, subject=subject):
      (value, (gz, _)) = outs[subject]
      want = ref.iic_loss(z, zb)
      np.testing.assert_allclose(float(value), want, rtol=1e-4, atol=1e-5)
      if "torch" in outs:
        tval, tgz, _ = outs["torch"]
        np.testing.assert_allclose(float(value), float(tval), rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(np.asarray(gz), tgz.numpy(), rtol=1e-3, atol=1e-6)

      if "jaxvision-xla" in outs:
        np.testing.assert_allclose(float(outs["jaxvision-xla"][0]), float(value), rtol=1e-4,
                                   atol=1e-5)

    out.append(Case(family="iic", name=f"iic_loss fwd+bwd {batch}x{classes}", size=batch,
                    subject=subject, impls=impls, missing=missing, check=check, reps=7))
  return out


def _torch_model(torch, widths=(16, 32, 64, 128), heads=5, clusters=10, over=50,
                 feature_hw=3):
  nn = torch.nn
  layers = []
  cin = 1
  for i, w in enumerate(widths):
    if i:
      layers.append(nn.MaxPool2d(2))
    # BatchNorm momentum 0.01 = flax's 0.99 decay; eps as the flax model (Keras' 1e-3).
    layers += [nn.Conv2d(cin, w, 3, padding=1), nn.BatchNorm2d(w, eps=1e-3, momentum=0.01),
               nn.ReLU()]
    cin = w
  trunk = nn.Sequential(*layers, nn.Flatten())
  dim = widths[-1] * feature_hw * feature_hw
  cluster_heads = nn.ModuleList([nn.Linear(dim, clusters) for _ in range(heads)])
  over_heads = nn.ModuleList([nn.Linear(dim, over) for _ in range(heads)])
  return trunk, cluster_heads, over_heads


def step_cases(mode: str, device: str = "cpu") -> list[Case]:
  torch = comparators.torch_for(device)
  where = "cuda" if device == "gpu" else "cpu"
  images = {"smoke": 16, "quick": 64, "full": 256}[mode]
  pairs = images * 3  # the cpu recipe repeats each image 3 times
  rng = np.random.default_rng(0)
  v1 = rng.random((pairs, 24, 24, 1), dtype=np.float32)
  v2 = rng.random((pairs, 24, 24, 1), dtype=np.float32)

  model = models.IICFastCPU()
  variables = model.init(jax.random.key(0), jnp.zeros((2, 24, 24, 1)), train=False)
  tx = optax.adam(1e-3)
  params, batch_stats = variables["params"], variables["batch_stats"]
  opt_state = tx.init(params)

  def loss_fn(params, batch_stats, x):
    out, upd = model.apply({"params": params, "batch_stats": batch_stats}, x, train=True,
                           mutable=["batch_stats"])
    n = x.shape[0] // 2
    c, o = out["clusters"], out["overclusters"]
    loss = (jnp.mean(ops.iic_loss(c[:, :n], c[:, n:]))
            + jnp.mean(ops.iic_loss(o[:, :n], o[:, n:])))
    return loss, upd["batch_stats"]

  # The same compilation as jaxvision.train's step (see jaxvision.compat).
  @functools.partial(jax.jit, donate_argnums=(0, 1, 2),
                     compiler_options=compat.compiler_options())
  def jax_step(params, batch_stats, opt_state, x):
    (loss, batch_stats), grads = jax.value_and_grad(loss_fn, has_aux=True)(
        params, batch_stats, x)
    updates, opt_state = tx.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), batch_stats, opt_state, loss

  x = jnp.asarray(np.concatenate([v1, v2]))
  state = {"s": (params, batch_stats, opt_state)}

  def jaxvision_step():
    p, b, o, loss = jax_step(*state["s"], x)
    state["s"] = (p, b, o)
    return loss

  impls = {"jaxvision": jaxvision_step}
  missing = []
  if torch is not None:
    trunk, cheads, oheads = _torch_model(torch)
    modules = torch.nn.ModuleList([trunk, cheads, oheads]).to(where)
    opt = torch.optim.Adam(modules.parameters(), lr=1e-3)
    tx_in = torch.from_numpy(np.ascontiguousarray(
        np.concatenate([v1, v2]).transpose(0, 3, 1, 2))).to(where)

    def torch_step():
      opt.zero_grad(set_to_none=True)
      feats = trunk(tx_in)
      n = feats.shape[0] // 2
      loss = 0.0
      for group in (cheads, oheads):
        losses = []
        for head in group:
          z = torch.softmax(head(feats), dim=-1)
          losses.append(_torch_iic_loss(torch, z[:n], z[n:]))
        loss = loss + torch.stack(losses).mean()
      loss.backward()
      opt.step()
      comparators.sync(device)
      return loss.detach()

    impls["torch"] = torch_step
  else:
    missing.append("torch")
  return [Case(family="iic", name=f"IIC train step {images}x3 pairs (fast_cpu)", size=pairs,
               subject="jaxvision", impls=impls, goals={"torch": 1.0}, missing=missing,
               reps=5)]


def cases(mode: str, device: str = "cpu") -> list[Case]:
  return loss_cases(mode, device) + step_cases(mode, device)
