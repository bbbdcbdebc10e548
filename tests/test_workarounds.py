"""The XLA:CPU workaround applied at ``import jaxvision`` (see jaxvision/_workarounds.py)."""

import os
import subprocess
import sys
import textwrap

import pytest

from jaxvision import _workarounds

# Gradient of an IIC-style loss on five stacked softmax heads: segfaults in YNNPACK's fp32 dot
# on jaxlib 0.10.2's XLA:CPU unless YNN fusions are off.
REPRODUCER = textwrap.dedent("""
    import jaxvision, jax, jax.numpy as jnp
    H, B, D, C = 5, 1536, 128, 50
    feat = jax.random.normal(jax.random.key(0), (B, D))
    w = jax.random.normal(jax.random.key(1), (H, D, C)) * 0.01
    gg = jax.random.uniform(jax.random.key(2), (H, C, C))
    def loss(w):
      z = jax.nn.softmax(jnp.einsum("bd,hdc->hbc", feat, w))
      return jnp.sum(gg * jnp.einsum("hbi,hbj->hij", z[:, :B // 2], z[:, B // 2:]))
    print(float(jnp.sum(jax.jit(jax.grad(loss))(w))))
""")


def test_training_graph_that_crashed_xla_cpu_runs_after_import():
  env = {k: v for k, v in os.environ.items() if k not in ("XLA_FLAGS",
                                                           "JAXVISION_KEEP_XLA_FLAGS")}
  env["JAX_PLATFORMS"] = "cpu"
  proc = subprocess.run([sys.executable, "-c", REPRODUCER], env=env, capture_output=True,
                        text=True, timeout=300, check=False)
  assert proc.returncode == 0, proc.stderr[-2000:]
  float(proc.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("flags, keep, version, expect", [
    ("", None, (0, 10, 2), "--xla_cpu_experimental_ynn_fusion_type="),
    ("--xla_foo=1", None, (0, 10, 0), "--xla_foo=1 --xla_cpu_experimental_ynn_fusion_type="),
    ("--xla_cpu_experimental_ynn_fusion_type=dot", None, (0, 10, 2),
     "--xla_cpu_experimental_ynn_fusion_type=dot"),  # the user's choice wins
    ("", "1", (0, 10, 2), ""),  # opt-out
    ("", None, (0, 11, 0), ""),  # other releases: not touched
])
def test_apply_rules(monkeypatch, flags, keep, version, expect):
  monkeypatch.setenv("XLA_FLAGS", flags)
  if keep is None:
    monkeypatch.delenv("JAXVISION_KEEP_XLA_FLAGS", raising=False)
  else:
    monkeypatch.setenv("JAXVISION_KEEP_XLA_FLAGS", keep)
  monkeypatch.setattr(_workarounds, "_jaxlib_version", lambda: version)
  changed = _workarounds.apply()
  assert os.environ["XLA_FLAGS"] == expect
  assert changed == (expect != flags)
