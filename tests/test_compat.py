"""The XLA:CPU workaround for jaxlib 0.10.x (see jaxvision/compat.py)."""

import os
import subprocess
import sys
import textwrap

import pytest

from jaxvision import compat

# Gradient of an IIC-style loss on five stacked softmax heads: segfaults in a YNNPACK fusion
# on jaxlib 0.10.2's XLA:CPU unless compiled with jaxvision's compiler options.
REPRODUCER = textwrap.dedent("""
    import jax, jax.numpy as jnp
    from jaxvision import compat
    H, B, D, C = 5, 1536, 128, 50
    feat = jax.random.normal(jax.random.key(0), (B, D))
    w = jax.random.normal(jax.random.key(1), (H, D, C)) * 0.01
    gg = jax.random.uniform(jax.random.key(2), (H, C, C))
    def loss(w):
      z = jax.nn.softmax(jnp.einsum("bd,hdc->hbc", feat, w))
      return jnp.sum(gg * jnp.einsum("hbi,hbj->hij", z[:, :B // 2], z[:, B // 2:]))
    step = jax.jit(jax.grad(loss), compiler_options=compat.compiler_options())
    print(float(jnp.sum(step(w))))
""")


def test_training_graph_that_crashed_xla_cpu_compiles_and_runs():
  env = dict(os.environ, JAX_PLATFORMS="cpu")
  proc = subprocess.run([sys.executable, "-c", REPRODUCER], env=env, capture_output=True,
                        text=True, timeout=300, check=False)
  assert proc.returncode == 0, proc.stderr[-2000:]
  float(proc.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("version, backend, expect", [
    ((0, 10, 2), "cpu", {"xla_cpu_experimental_ynn_fusion_type": ""}),
    ((0, 10, 0), "cpu", {"xla_cpu_experimental_ynn_fusion_type": ""}),
    ((0, 10, 2), "gpu", None),
    ((0, 11, 0), "cpu", None),
    ((), "cpu", None),
])
def test_compiler_options_only_where_needed(monkeypatch, version, backend, expect):
  monkeypatch.setattr(compat, "_jaxlib_version", lambda: version)
  assert compat.compiler_options(backend) == expect
