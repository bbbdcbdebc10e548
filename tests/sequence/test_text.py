"""Text: the negation corpus (contrast sentences hold the same words for both labels), the
tokenizer and vocabulary, the bag-of-words model's order invariance against the text CNN's
order sensitivity, IMDB through tfds.testing.mock_data."""

from __future__ import annotations

import collections

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxvision import models, sequence, text


def test_corpus_labels_follow_the_grammar():
  texts, labels, kinds = text.negation_corpus(400, seed=3)
  assert len(texts) == 400 and set(np.unique(kinds)) == {0, 1, 2}
  pos, neg = set(text.POSITIVE), set(text.NEGATIVE)
  for t, y, k in zip(texts, labels, kinds):
    words = t.split()
    adjs = [w for w in words if w in pos or w in neg]
    if k == 0:
      assert "not" not in words and len(adjs) == 1 and (adjs[0] in pos) == bool(y)
    elif k == 1:
      assert "not" in words and len(adjs) == 1 and (adjs[0] in pos) != bool(y)
    else:   # "... not A , it was B": the label is B's polarity; A has the other one
      assert len(adjs) == 2 and (adjs[1] in pos) == bool(y) and (adjs[0] in pos) != bool(y)
  assert abs(labels.mean() - 0.5) < 0.1
  again = text.negation_corpus(400, seed=3)
  assert again[0] == texts


def test_contrast_sentences_give_a_bag_of_words_nothing():
  """Bag of words (sorted multiset) -> labels: among contrast sentences, the same bag with
  swapped adjectives occurs with both labels equally: every bag has a mirror of the other
  label (the adjective pair is unordered in the bag)."""
  texts, labels, kinds = text.negation_corpus(3000, seed=0, kinds=(0, 0, 1))
  pos = set(text.POSITIVE)
  by_label = collections.Counter()
  for t, y in zip(texts, labels):
    words = t.split()
    adjs = tuple(sorted(w for w in words if w in pos or w in set(text.NEGATIVE)))
    by_label[(adjs, int(y))] += 1
  # The positive and negative adjective pair occurs in both orders, hence both labels.
  pairs = {a for a, _ in by_label}
  both = sum(1 for a in pairs if (a, 0) in by_label and (a, 1) in by_label)
  assert both / len(pairs) > 0.5


def test_tokenizer_vocabulary_and_encoding():
  assert text.tokenize("Not GOOD, it was<br />bad!") == ["not", "good", ",", "it", "was",
                                                          "bad", "!"]
  assert text.tokenize(b"ok.") == ["ok", "."]
  with pytest.raises(TypeError):
    text.tokenize(3)
  vocab = text.Vocabulary.build(["b a a", "c a b"], max_size=4)
  assert vocab.words == ["<pad>", "<unk>", "a", "b"]          # by count, then alphabetically
  ids = text.encode(vocab, ["a c b", "b b b b b"], 4)
  assert ids.tolist() == [[2, 1, 3, 0], [3, 3, 3, 3]]
  with pytest.raises(ValueError, match="length"):
    text.encode(vocab, ["a"], 0)
  with pytest.raises(ValueError, match="n"):
    text.negation_corpus(0)


def test_bag_of_words_ignores_order_and_the_cnn_does_not():
  rng = np.random.default_rng(0)
  tokens = jnp.asarray(rng.integers(1, 30, (4, 10)), jnp.int32)
  perm = tokens[:, ::-1]
  for cls, order_blind in ((models.BagOfWords, True), (models.TextCNN, False)):
    m = cls(vocab_size=30, embed_dim=8, **({"features": 8} if cls is models.TextCNN else {}))
    v = jax.jit(m.init)(jax.random.key(0, impl="rbg"), tokens)
    apply = jax.jit(m.apply)
    a, b = apply(v, tokens), apply(v, perm)
    assert a.shape == (4, 2)
    assert np.allclose(a, b, atol=1e-5) == order_blind
  # Padding does not change either model's output.
  padded = jnp.concatenate([tokens, jnp.zeros((4, 5), jnp.int32)], 1)
  for cls in (models.BagOfWords, models.TextCNN):
    m = cls(vocab_size=30, embed_dim=8)
    v = jax.jit(m.init)(jax.random.key(1, impl="rbg"), tokens)
    np.testing.assert_allclose(jax.jit(m.apply)(v, tokens), jax.jit(m.apply)(v, padded),
                               atol=1e-5)


def test_a_short_training_run_and_prediction_on_raw_text(tmp_path):
  train, test, fields = text.experiment_data({"dataset": "negation", "train": 512,
                                              "test": 128, "length": 16})
  fields = dict(fields)
  attrs = {**fields.pop("attributes"), "embed_dim": 16, "features": 16, "dropout": 0.0}
  spec = sequence.InputsSpec(model="TextCNN", attributes=attrs, **fields)
  cfg = sequence.SequenceConfig(model="TextCNN", steps=60, batch_size=32,
                                learning_rate=1e-2, warmup_steps=1, checkpoint_every=0,
                                log_every=60)
  clf, res = sequence.train_inputs_classifier(spec, train, test, cfg, tmp_path / "w",
                                              group="kind")
  assert res["final_step"] == 60
  ev = sequence.evaluate_inputs_classifier(clf, test, group="kind")
  assert set(ev["group_accuracy"]) == {"plain", "negated", "contrast"}
  assert ev["accuracy"] > 0.6           # from 0.5: it learns the plain sentences first
  clf.save(tmp_path / "clf.msgpack")
  again = sequence.InputsClassifier.load(tmp_path / "clf.msgpack")
  classes, probs = text.predict_texts(again, ["the film was great", "the plot was bad"])
  assert classes.shape == (2,) and np.allclose(probs.sum(-1), 1, atol=1e-5)
  png = text.save_text_report(tmp_path / "r.png", again, test)
  assert (tmp_path / "r.png").stat().st_size > 1000 and png.endswith("r.png")


def test_imdb_through_tfds_mock_data():
  tfds = pytest.importorskip("tensorflow_datasets")
  reviews = [{"text": b"A wonderful film, truly great.", "label": 1},
             {"text": b"Awful.<br />Boring and bad.", "label": 0},
             {"text": b"great great great fun", "label": 1}]

  def serve(builder, split, **kwargs):
    del builder, split, kwargs
    return list(reviews)

  with tfds.testing.mock_data(as_data_source_fn=serve):
    train, test, vocab = text.imdb_sources(length=6, max_vocab=50)
  assert train.arrays["tokens"].shape == (3, 6)
  assert train.arrays["label"].tolist() == [1, 0, 1]
  assert vocab.words[2] == "great"                # the most frequent word
  first = [vocab.words[i] for i in train.arrays["tokens"][1] if i > 0]
  assert first == ["awful", ".", "boring", "and", "bad", "."]
