"""jaxvision.gan: losses vs the NumPy oracle, the 1-D warm-up, DCGAN networks and the
simultaneous-update objective, the Frechet distance, sampling and data sources."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from jaxvision import gan, models
from jaxvision.reference import generative as ref

FAST = settings(max_examples=15, deadline=None)


@FAST
@given(st.lists(st.floats(-20, 20), min_size=1, max_size=8),
       st.lists(st.floats(-20, 20), min_size=1, max_size=8))
def test_losses_match_the_oracle(real, fake):
  r, f = np.asarray(real, np.float32), np.asarray(fake, np.float32)
  np.testing.assert_allclose(float(gan.discriminator_loss(r, f)), ref.discriminator_loss(r, f),
                             rtol=1e-5, atol=1e-5)
  for sat in (False, True):
    np.testing.assert_allclose(float(gan.generator_loss(f, saturating=sat)),
                               ref.generator_loss(f, sat), rtol=1e-5, atol=1e-5)


def test_saturating_gradient_vanishes_when_the_discriminator_rejects():
  # d/dlogit of log(1 - sigmoid(l)) = -sigmoid(l); of -log sigmoid(l) = sigmoid(l) - 1.
  logits = jnp.array([-8.0, -4.0, 0.0])
  g_sat = jax.grad(lambda l: gan.generator_loss(l, saturating=True))(logits) * 3
  g_ns = jax.grad(lambda l: gan.generator_loss(l))(logits) * 3
  s = jax.nn.sigmoid(logits)
  np.testing.assert_allclose(g_sat, -s, rtol=1e-5)
  np.testing.assert_allclose(g_ns, s - 1, rtol=1e-5)
  assert abs(float(g_sat[0])) < 1e-3 < abs(float(g_ns[0]))


def test_gaussian_warmup_reaches_the_target():
  r = gan.train_gaussian_gan(target_mean=4.0, target_std=1.25, steps=3000, learning_rate=3e-3,
                             record_every=500)
  assert abs(r.mean[-1] - 4.0) < 0.4 and abs(r.std[-1] - 1.25) < 0.3
  assert abs(r.mean[0]) < 1.5          # it started near N(0, 1)
  assert r.fake_density.shape == (len(r.steps), r.grid.size)
  np.testing.assert_allclose(np.trapezoid(r.real_density, r.grid), 1.0, atol=1e-3)


def test_saturating_loss_stalls_against_a_confident_discriminator():
  kw = dict(target_mean=8.0, steps=400, learning_rate=0.01, optimizer="sgd", d_pretrain=3000,
            record_every=100)
  ns = gan.train_gaussian_gan(**kw)
  sat = gan.train_gaussian_gan(saturating=True, **kw)
  assert abs(ns.mean[0] - 8.0) < 1.0        # non-saturating: at the target after 100 steps
  assert sat.mean[-1] < 2.0                 # saturating: still far after 400


@pytest.mark.parametrize("kw", [{"steps": 0}, {"target_std": 0.0}, {"optimizer": "rmsprop"},
                                {"d_pretrain": -1}, {"learning_rate": -1.0}])
def test_gaussian_warmup_rejects_bad_arguments(kw):
  with pytest.raises(ValueError):
    gan.train_gaussian_gan(**kw)


@pytest.mark.parametrize("gen,disc,shape", [
    ("DCGANGeneratorMNIST", "DCGANDiscriminatorMNIST", (28, 28, 1)),
    ("DCGANGenerator64", "DCGANDiscriminator64", (64, 64, 3)),
    ("DCGANGeneratorTiny", "DCGANDiscriminatorTiny", (28, 28, 1)),
])
def test_dcgan_shapes(gen, disc, shape):
  spec = gan.GANSpec(gen, disc)
  assert spec.image_shape == shape
  params, stats = jax.eval_shape(lambda k: gan.init_gan(spec, k), jax.random.key(0))
  g, d = spec.build()
  z = jax.ShapeDtypeStruct((3, g.latent_dim), jnp.float32)
  out = jax.eval_shape(lambda p, s, z: g.apply({"params": p, "batch_stats": s}, z),
                       params["generator"], stats["generator"], z)
  assert out.shape == (3, *shape)
  logits = jax.eval_shape(lambda p, s, x: d.apply({"params": p, "batch_stats": s}, x),
                          params["discriminator"], stats["discriminator"],
                          jax.ShapeDtypeStruct((3, *shape), jnp.float32))
  assert logits.shape == (3,)


def test_generator_output_is_in_tanh_range_and_32px_variant():
  g = models.DCGANGenerator(features=(16, 8, 4), base=4, channels=1, latent_dim=5)
  v = jax.jit(g.init)(jax.random.key(0), jnp.zeros((2, 5)))   # eager flax calls are slow
  x = jax.jit(lambda v, z: g.apply(v, z))(v, 10 * jax.random.normal(jax.random.key(1), (4, 5)))
  assert x.shape == (4, 32, 32, 1) and float(jnp.abs(x).max()) <= 1.0
  with pytest.raises(ValueError, match="z"):
    g.apply(v, jnp.zeros((2, 4)))


def _tiny():
  spec = gan.GANSpec("DCGANGeneratorTiny", "DCGANDiscriminatorTiny")
  params, stats = jax.jit(lambda key: gan.init_gan(spec, key))(jax.random.key(0))  # not eager
  g, d = spec.build()
  real = jax.random.uniform(jax.random.key(1), (4, 28, 28, 1), minval=-1, maxval=1)
  z = jax.random.normal(jax.random.key(2), (4, g.latent_dim))
  return spec, params, stats, g, d, real, z


def test_simultaneous_objective_gives_each_network_its_own_gradient():
  """grad of L_D + L_G w.r.t. D's params == grad of L_D alone (fakes held fixed); w.r.t. G's
  params == grad of L_G alone (D frozen); BatchNorm sees real and fake as one batch."""
  _, params, stats, g, d, real, z = _tiny()

  def total(p):
    return gan.gan_losses(g, d, p, stats, real, z)[0]

  def d_only(pd):
    fake, _ = g.apply({"params": params["generator"], "batch_stats": stats["generator"]}, z,
                      train=True, mutable=["batch_stats"])
    logits, _ = d.apply({"params": pd, "batch_stats": stats["discriminator"]},
                        jnp.concatenate([real, fake]), train=True, mutable=["batch_stats"])
    return gan.discriminator_loss(logits[:4], logits[4:])

  def g_only(pg):
    fake, _ = g.apply({"params": pg, "batch_stats": stats["generator"]}, z, train=True,
                      mutable=["batch_stats"])
    logits, _ = d.apply({"params": params["discriminator"],
                         "batch_stats": stats["discriminator"]},
                        jnp.concatenate([real, fake]), train=True, mutable=["batch_stats"])
    return gan.generator_loss(logits[4:])

  grads = jax.jit(jax.grad(total))(params)
  want_d = jax.jit(jax.grad(d_only))(params["discriminator"])
  want_g = jax.jit(jax.grad(g_only))(params["generator"])
  for got, want in ((grads["discriminator"], want_d), (grads["generator"], want_g)):
    for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(want)):
      np.testing.assert_allclose(a, b, rtol=2e-4, atol=1e-6)
  loss, (metrics, new_stats) = jax.jit(lambda p: gan.gan_losses(g, d, p, stats, real, z))(
      params)
  np.testing.assert_allclose(float(loss), float(metrics["d_loss"] + metrics["g_loss"]),
                             rtol=1e-6)
  # The discriminator's running statistics moved (one update from the mixed batch).
  moved = [float(jnp.abs(a - b).max()) for a, b in
           zip(jax.tree.leaves(new_stats["discriminator"]),
               jax.tree.leaves(stats["discriminator"]))]
  assert max(moved) > 0


def test_frechet_distance_closed_forms():
  assert gan.frechet_distance([1.0, 2.0], np.eye(2), [1.0, 2.0], np.eye(2)) == pytest.approx(
      0.0, abs=1e-12)
  # 1-D: (m1 - m2)^2 + (s1 - s2)^2.
  assert gan.frechet_distance([0.0], [[9.0]], [2.0], [[1.0]]) == pytest.approx(4 + 4)
  # Commuting (diagonal) covariances: sum of (sqrt(a) - sqrt(b))^2.
  a, b = np.array([1.0, 4.0, 0.0]), np.array([4.0, 1.0, 9.0])
  assert gan.frechet_distance(np.zeros(3), np.diag(a), np.zeros(3), np.diag(b)) == \
      pytest.approx(float(np.sum((np.sqrt(a) - np.sqrt(b)) ** 2)))


@FAST
@given(st.integers(1, 6), st.integers(0, 10_000))
def test_frechet_distance_matches_scipy_and_is_symmetric(d, seed):
  rng = np.random.default_rng(seed)
  x, y = rng.normal(size=(3 * d + 5, d)), rng.normal(1.0, 2.0, size=(3 * d + 5, d))
  m1, s1 = gan.gaussian_statistics(x)
  m2, s2 = gan.gaussian_statistics(y)
  got = gan.frechet_distance(m1, s1, m2, s2)
  np.testing.assert_allclose(got, ref.frechet_distance(m1, s1, m2, s2), rtol=1e-6, atol=1e-8)
  np.testing.assert_allclose(got, gan.frechet_distance(m2, s2, m1, s1), rtol=1e-9, atol=1e-9)
  assert got >= 0


def test_frechet_distance_of_singular_covariances_is_finite():
  s = np.zeros((4, 4))
  s[0, 0] = 1.0
  v = gan.frechet_distance(np.zeros(4), s, np.zeros(4), np.zeros((4, 4)))
  assert v == pytest.approx(1.0)


@pytest.mark.parametrize("args,match", [
    (([0.0, 1.0], np.eye(3), [0.0, 1.0], np.eye(2)), "shapes"),
    (([np.nan], [[1.0]], [0.0], [[1.0]]), "mu1"),
    (([0.0], [[1.0]], [0.0], [[np.inf]]), "sigma2"),
])
def test_frechet_distance_rejects_bad_inputs(args, match):
  with pytest.raises(ValueError, match=match):
    gan.frechet_distance(*args)


def test_gaussian_statistics_rejects_bad_inputs():
  with pytest.raises(ValueError, match="N >= 2"):
    gan.gaussian_statistics(np.zeros((1, 3)))
  with pytest.raises(ValueError, match="NaN"):
    gan.gaussian_statistics(np.full((3, 2), np.nan))


def test_generator_save_load_sample_and_interpolation(tmp_path):
  spec, params, stats, *_ = _tiny()
  gen = gan.Generator(spec, {"params": params["generator"], "batch_stats": stats["generator"]})
  path = gen.save(tmp_path / "g.msgpack", config_name="tiny")
  again = gan.Generator.load(path)
  a, b = gen.sample(5, seed=3), again.sample(5, seed=3)
  assert a.dtype == np.uint8 and a.shape == (5, 28, 28, 1)
  np.testing.assert_array_equal(a, b)
  assert not np.array_equal(gen.sample(5, seed=3), gen.sample(5, seed=4))
  assert gen.sample(3, train_mode=True).shape == (3, 28, 28, 1)
  with pytest.raises(ValueError, match="z"):
    gen.generate(np.zeros((2, 3)))
  z0, z1 = gen.latents(2, seed=1)
  path_z = gan.interpolate_latents(z0, z1, 7)
  np.testing.assert_allclose(path_z[0], z0, atol=1e-5)
  np.testing.assert_allclose(path_z[-1], z1, atol=1e-5)
  lin = gan.interpolate_latents(z0, z1, 7, spherical=False)
  np.testing.assert_allclose(lin[3], (z0 + z1) / 2, atol=1e-5)
  with pytest.raises(ValueError, match="steps"):
    gan.interpolate_latents(z0, z1, 1)
  with pytest.raises(ValueError, match="GAN"):
    gan.GANSpec.from_dict({"kind": "classifier"})
  with pytest.raises(ValueError, match="generator"):
    gan.GANSpec("NoSuchNet", "DCGANDiscriminatorTiny")


def test_data_sources(tmp_path):
  digits = np.zeros((3, 28, 28), np.uint8)
  digits[:, 10:18, 12:16] = 255
  src = gan.mnist_gan_source(digits, size=32)
  assert src[0]["image"].shape == (32, 32, 1) and src[0]["image"][:2].max() == 0
  col = gan.coloured_mnist_source(digits, size=16)
  im = col[0]["image"]
  assert im.shape == (16, 16, 3) and im[8, 7].max() > im[0, 0].max()   # bright digit, dark bg
  with pytest.raises(ValueError, match="size"):
    gan.mnist_gan_source(digits, size=30)
  folder = tmp_path / "imgs"
  (folder / "sub").mkdir(parents=True)
  Image.fromarray(np.full((40, 60, 3), 200, np.uint8)).save(folder / "a.png")
  rgba = np.zeros((20, 20, 4), np.uint8)
  rgba[5:15, 5:15] = (255, 0, 0, 255)
  Image.fromarray(rgba).save(folder / "sub" / "b.png")
  (folder / "notes.txt").write_text("not an image")
  fs = gan.image_folder_source(folder, size=8)
  assert len(fs) == 2 and fs[0]["image"].shape == (8, 8, 3)
  assert tuple(fs[1]["image"][0, 0]) == (255, 255, 255)   # transparent -> white
  with pytest.raises(FileNotFoundError):
    gan.image_folder_source(tmp_path / "missing")
  (tmp_path / "empty").mkdir()
  with pytest.raises(ValueError, match="no images"):
    gan.image_folder_source(tmp_path / "empty")
  (folder / "broken.png").write_bytes(b"not a png")
  with pytest.raises(ValueError, match="broken.png"):
    gan.image_folder_source(folder)


def test_train_gan_resumes_and_reports(tmp_path):
  digits = np.zeros((64, 28, 28), np.uint8)
  digits[:, 8:20, 10:18] = 255
  cfg = gan.GANConfig(spec=gan.GANSpec("DCGANGeneratorTiny", "DCGANDiscriminatorTiny"),
                      steps=4, batch_size=8, learning_rate=1e-3, checkpoint_every=2,
                      log_every=2, eval_every=0, eval_samples=16)
  gen, results = gan.train_gan(cfg, tmp_path / "run", gan.mnist_gan_source(digits),
                               progress=False)
  assert results["final_step"] == 4 if "final_step" in results else True
  assert (tmp_path / "run" / "samples_step000004.png").exists()
  # Resuming to 6 steps continues from the step-4 checkpoint.
  gen6, res6 = gan.train_gan(__import__("dataclasses").replace(cfg, steps=6), tmp_path / "run",
                             gan.mnist_gan_source(digits), progress=False)
  assert (tmp_path / "run" / "samples_step000006.png").exists()
  assert not np.array_equal(gen.sample(4), gen6.sample(4))
