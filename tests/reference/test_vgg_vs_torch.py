"""jaxvision's VGG-19 with weights loaded from a torchvision state_dict == torchvision's
vgg19().features on the same input (run by hand with the bench extra; skipped without torch)."""

from __future__ import annotations

import jax
import numpy as np
import pytest

from jaxvision.models import vgg

torch = pytest.importorskip("torch")
torchvision = pytest.importorskip("torchvision")


def test_vgg19_matches_torchvision(tmp_path):
  torch.manual_seed(0)
  net = torchvision.models.vgg19(weights=None).eval()
  torch.save(net.state_dict(), tmp_path / "vgg19.pth")
  params, layout = vgg.load_vgg_weights(tmp_path / "vgg19.pth")
  assert layout == "torchvision"
  x = np.random.default_rng(0).uniform(size=(1, 64, 64, 3)).astype(np.float32)
  pre = np.asarray(vgg.vgg_preprocess(x, layout))
  with torch.no_grad():
    feats = net.features[:36](torch.from_numpy(pre.transpose(0, 3, 1, 2)))   # to block5_conv4's ReLU
    pooled = net.features(torch.from_numpy(pre.transpose(0, 3, 1, 2)))
  out = jax.jit(lambda p, x: vgg.VGG19().apply({"params": p}, x))(params, pre)
  np.testing.assert_allclose(np.asarray(out["block5_conv4"]), feats.numpy().transpose(0, 2, 3, 1),
                             rtol=1e-3, atol=1e-3 * float(feats.abs().max()))
  np.testing.assert_allclose(np.asarray(out["block5_pool"]), pooled.numpy().transpose(0, 2, 3, 1),
                             rtol=1e-3, atol=1e-3 * float(pooled.abs().max()))
