"""VQA: generated answers agree with the scene's objects, question encoding, the relation
network's per-object first layer against the explicit pairwise oracle, model shapes."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxvision import models, vqa
from jaxvision.reference import sequence as ref


def _digits():
  rng = np.random.default_rng(0)
  return rng.integers(0, 255, (40, 28, 28)).astype(np.uint8), np.arange(40) % 10


def test_answers_follow_from_the_objects():
  digits, labels = _digits()
  for i in range(40):
    rng = np.random.default_rng((5, i))
    image, objects = vqa.make_scene(digits, labels, rng)
    assert image.shape == (64, 64, 3) and image.dtype == np.uint8
    assert 1 <= len(objects) <= 4
    assert len({o["col"] for o in objects}) == len(objects)           # own column each
    assert len({o["digit"] for o in objects}) == len(objects)
    assert len({o["colour"] for o in objects}) == len(objects)
    for q, a, t in vqa._questions(objects, rng):  # pylint: disable=protected-access
      words = q.split()
      if t == 0:
        assert a == str(len(objects))
      elif t == 1:
        assert (a == "yes") == (int(words[3]) in [o["digit"] for o in objects])
      elif t == 2:
        d = int(words[-2])
        me = next(o for o in objects if o["digit"] == d)
        left = sorted((o for o in objects if o["col"] < me["col"]), key=lambda o: o["col"])
        assert a == (str(left[-1]["digit"]) if left else "none")
      else:
        d = int(words[-2])
        assert a == next(o["colour"] for o in objects if o["digit"] == d)


def test_records_and_question_codes():
  digits, labels = _digits()
  r = vqa.vqa_records(digits, labels, 6, seed=1)
  assert r["image"].shape == (24, 64, 64, 3) and r["question"].shape == (24, 9)
  assert r["qtype"].tolist() == [0, 1, 2, 3] * 6
  assert np.all(r["image"][0] == r["image"][3]) and r["scene"].tolist()[:5] == [0, 0, 0, 0, 1]
  q = vqa.encode_question("what colour is the 5 ?")
  assert vqa.decode_question(q) == "what colour is the 5 ?" and q[-1] == 0
  with pytest.raises(ValueError, match="vocabulary"):
    vqa.encode_question("what shape is the 5 ?")
  with pytest.raises(ValueError, match="num_scenes"):
    vqa.vqa_records(digits, labels, 0)


def test_relation_pairs_match_the_explicit_oracle():
  """RelationNet computes g's first layer per object and broadcasts over pairs; the oracle
  concatenates every pair."""
  model = models.RelationNetTiny(num_classes=5, vocab_size=25)
  image = jnp.asarray(np.random.default_rng(0).uniform(size=(2, 64, 64, 3)), jnp.float32)
  question = jnp.asarray([[1, 2, 3, 0, 0, 0, 0, 0, 0], [8, 9, 10, 11, 12, 4, 0, 0, 0]])
  v = jax.jit(model.init)(jax.random.key(0, impl="rbg"), image, question)
  p = jax.tree.map(np.asarray, v["params"])
  out, inter = jax.jit(lambda v, i, q: model.apply(v, i, q, capture_intermediates=True))(
      v, image, question)
  f = np.asarray(inter["intermediates"]["cnn"]["__call__"][0])
  q = np.asarray(inter["intermediates"]["question"]["__call__"][0])
  b, gh, gw, c = f.shape
  yy, xx = np.meshgrid(np.linspace(-1, 1, gh), np.linspace(-1, 1, gw), indexing="ij")
  objects = np.concatenate([f, np.broadcast_to(np.stack([yy, xx], -1), (b, gh, gw, 2))],
                           -1).reshape(b, gh * gw, c + 2)
  w0 = np.concatenate([p["g0_first"]["kernel"], p["g0_second"]["kernel"],
                       p["g0_question"]["kernel"]], 0)
  layers = [(w0, p["g0_question"]["bias"]), (p["g1"]["kernel"], p["g1"]["bias"]),
            (p["g2"]["kernel"], p["g2"]["bias"])]
  h = ref.relation_pairs(objects, q, layers)
  h = np.maximum(h @ p["f0"]["kernel"] + p["f0"]["bias"], 0)
  h = np.maximum(h @ p["f1"]["kernel"] + p["f1"]["bias"], 0)
  want = h @ p["answer"]["kernel"] + p["answer"]["bias"]
  np.testing.assert_allclose(np.asarray(out), want, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("name", ["VQANetTiny", "QuestionOnlyTiny", "RelationNetTiny"])
def test_models_answer_shapes(name):
  m = getattr(models, name)(num_classes=len(vqa.ANSWERS), vocab_size=len(vqa.QUESTION_WORDS))
  image, question = np.zeros((3, 64, 64, 3), np.float32), np.ones((3, 9), np.int32)
  out = jax.eval_shape(lambda: m.init_with_output(jax.random.key(0), image, question)[0])
  assert out.shape == (3, len(vqa.ANSWERS))


def test_question_only_ignores_the_image_and_padding_is_ignored():
  m = models.VQANetTiny(num_classes=4, vocab_size=25)
  q = jnp.asarray([[1, 2, 3, 4, 5, 0, 0, 0, 0]])
  im = jnp.zeros((1, 64, 64, 3))
  # An rbg key: XLA:CPU compiles this init ~3x faster than with the default threefry key (whose
  # hash is unrolled per parameter); the properties below hold for any initialisation.
  v = jax.jit(m.init)(jax.random.key(0, impl="rbg"), im, q)
  # The question code is the LSTM state after the last real word: trailing padding of any
  # length gives the same answer.
  q2 = jnp.asarray([[1, 2, 3, 4, 5, 0, 0, 0, 0, 0, 0]])
  apply = jax.jit(m.apply)
  np.testing.assert_allclose(apply(v, im, q), apply(v, im, q2), atol=1e-5)
  qo = models.QuestionOnlyTiny(num_classes=4, vocab_size=25)
  vq = jax.jit(qo.init)(jax.random.key(0, impl="rbg"), im, q)
  apply = jax.jit(qo.apply)
  np.testing.assert_allclose(apply(vq, im, q), apply(vq, im + 1.0, q), atol=1e-6)
