"""Text classification data: a tokenizer and vocabulary, an offline corpus whose labels
depend on word order, and IMDB through TFDS.

* :func:`negation_corpus` generates movie-review sentences in three kinds: ``plain`` ("the
  plot was good"), ``negated`` ("the plot was not good": the label flips) and ``contrast``
  ("the plot was not good , it was dull" vs "the plot was not dull , it was good"). A contrast
  sentence and its opposite hold the same words, so for *any* bag-of-words model the two
  labels are equally likely: 50% on that kind is the best it can do, and the text CNN's
  margin over it is what word order buys.
* :class:`Vocabulary` (lower-case word tokens, ``<pad>`` = 0, ``<unk>`` = 1) and
  :func:`encode` (pad / truncate to a fixed length).
* :func:`imdb_sources` reads ``imdb_reviews`` with ``tfds.data_source`` from a TFDS data dir
  (the 25k / 25k review split; Keras's example reports ~0.89 after 2 epochs).

Records are ``{"tokens": int32 [L], "label": int, "kind": int}`` (an
:class:`~jaxvision.data.ArraySource`), ready for :mod:`jaxvision.sequence`.
"""

from __future__ import annotations

import collections
import re
from typing import Any, Iterable, Sequence

import numpy as np

from jaxvision.data import ArraySource

__all__ = ["POSITIVE", "NEGATIVE", "KINDS", "negation_corpus", "tokenize", "Vocabulary",
           "encode", "text_sources", "imdb_sources"]

POSITIVE = ("good", "great", "superb", "fine", "wonderful", "brilliant", "clever", "moving",
            "delightful", "charming", "gripping", "funny")
NEGATIVE = ("bad", "dull", "awful", "boring", "poor", "weak", "terrible", "silly", "tedious",
            "clumsy", "bland", "messy")
KINDS = ("plain", "negated", "contrast")
_SUBJECTS = ("the film", "the movie", "the plot", "the acting", "the script", "the story",
             "the ending", "the cast", "the music", "the dialogue", "this picture", "the sequel")
_VERBS = ("was", "is", "felt", "seemed")
_ADVERBS = ("", "", "really", "very", "quite", "truly")
_FILLERS = ("", "", "honestly ,", "overall ,", "to be fair ,", "in the end ,", "i think")
_PRONOUNS = ("it was", "it is", "it felt", "it seemed", "they were")


def negation_corpus(n: int, *, seed: int = 0, kinds: Sequence[float] = (0.25, 0.25, 0.5)
                    ) -> tuple[list[str], np.ndarray, np.ndarray]:
  """``(texts, labels, kinds)``: ``n`` generated sentences, labels 1 = positive, kinds index
  :data:`KINDS` drawn with probabilities ``kinds``. Labels are balanced within each kind."""
  if int(n) < 1:
    raise ValueError(f"`n` must be >= 1, got {n!r}.")
  p = np.asarray(kinds, np.float64)
  if p.shape != (3,) or np.any(p < 0) or p.sum() <= 0:
    raise ValueError(f"`kinds` must be 3 non-negative weights (plain, negated, contrast), got "
                     f"{kinds!r}.")
  rng = np.random.default_rng(seed)
  kind = rng.choice(3, size=int(n), p=p / p.sum())
  labels = rng.integers(0, 2, size=int(n))
  texts = []
  pick = lambda seq: seq[rng.integers(len(seq))]  # noqa: E731
  for k, y in zip(kind, labels):
    filler, subj, verb, adv = pick(_FILLERS), pick(_SUBJECTS), pick(_VERBS), pick(_ADVERBS)
    pos, neg = pick(POSITIVE), pick(NEGATIVE)
    head = " ".join(w for w in (filler, subj, verb) if w)
    if k == 0:      # "the plot was (very) good"
      words = [head, adv, pos if y else neg]
    elif k == 1:    # "the plot was not (very) good": negation flips the adjective
      words = [head, "not", adv, neg if y else pos]
    else:           # the same words either way: only their order gives the label
      first, second = (neg, pos) if y else (pos, neg)
      words = [head, "not", adv, first, ",", pick(_PRONOUNS), second]
    texts.append(" ".join(w for w in words if w))
  return texts, labels.astype(np.int32), kind.astype(np.int32)


_TOKEN = re.compile(r"[a-z0-9']+|[,.!?;]")


def tokenize(text: str | bytes) -> list[str]:
  """Lower-case words, digits and punctuation marks; HTML line breaks dropped."""
  if isinstance(text, bytes):
    text = text.decode("utf-8", errors="replace")
  if not isinstance(text, str):
    raise TypeError(f"`text` must be str or bytes, got {type(text).__name__}.")
  return _TOKEN.findall(text.lower().replace("<br />", " "))


class Vocabulary:
  """Word -> id: ``<pad>`` 0, ``<unk>`` 1, then words by decreasing count (ties by word)."""

  PAD, UNK = 0, 1

  def __init__(self, words: Sequence[str]):
    words = list(words)
    if words[:2] != ["<pad>", "<unk>"]:
      words = ["<pad>", "<unk>"] + [w for w in words if w not in ("<pad>", "<unk>")]
    self.words = words
    self.index = {w: i for i, w in enumerate(words)}

  @classmethod
  def build(cls, texts: Iterable[str | bytes], *, max_size: int = 20000, min_count: int = 1
            ) -> "Vocabulary":
    if int(max_size) < 3:
      raise ValueError(f"`max_size` must be >= 3, got {max_size!r}.")
    counts = collections.Counter(t for text in texts for t in tokenize(text))
    ranked = sorted((w for w, c in counts.items() if c >= min_count),
                    key=lambda w: (-counts[w], w))
    return cls(["<pad>", "<unk>"] + ranked[:int(max_size) - 2])

  def __len__(self) -> int:
    return len(self.words)

  def ids(self, text: str | bytes) -> list[int]:
    return [self.index.get(t, self.UNK) for t in tokenize(text)]


def encode(vocab: Vocabulary, texts: Sequence[str | bytes], length: int) -> np.ndarray:
  """``int32 [N, length]`` ids, padded with 0 or truncated (the first ``length`` tokens)."""
  if int(length) < 1:
    raise ValueError(f"`length` must be >= 1, got {length!r}.")
  out = np.zeros((len(texts), int(length)), np.int32)
  for i, t in enumerate(texts):
    ids = vocab.ids(t)[:int(length)]
    out[i, :len(ids)] = ids
  return out


def text_sources(train_texts, train_labels, test_texts, test_labels, *, length: int,
                 max_vocab: int = 20000, train_kinds=None, test_kinds=None
                 ) -> tuple[ArraySource, ArraySource, Vocabulary]:
  """Sources of ``{"tokens", "label"[, "kind"]}`` with a vocabulary built on the training
  texts only."""
  vocab = Vocabulary.build(train_texts, max_size=max_vocab)

  def make(texts, labels, kinds):
    arrays = {"tokens": encode(vocab, texts, length),
              "label": np.asarray(labels, np.int32)}
    if kinds is not None:
      arrays["kind"] = np.asarray(kinds, np.int32)
    return ArraySource(arrays)

  return (make(train_texts, train_labels, train_kinds),
          make(test_texts, test_labels, test_kinds), vocab)


def imdb_sources(data_dir: Any = None, *, length: int = 256, max_vocab: int = 20000,
                 train_examples: int | None = None, test_examples: int | None = None):
  """IMDB reviews (``tfds.data_source("imdb_reviews")``, prepared in ``data_dir``) as
  :func:`text_sources`: ``(train, test, vocab)``; labels 1 = positive."""
  from jaxvision.data.tfds import _import_tfds  # pylint: disable=import-outside-toplevel
  tfds = _import_tfds()

  def read(split, limit):
    src = tfds.data_source("imdb_reviews", split=split, data_dir=data_dir)
    n = len(src) if limit is None else min(int(limit), len(src))
    records = [src[i] for i in range(n)]
    return [r["text"] for r in records], [int(r["label"]) for r in records]

  tr_x, tr_y = read("train", train_examples)
  te_x, te_y = read("test", test_examples)
  return text_sources(tr_x, tr_y, te_x, te_y, length=length, max_vocab=max_vocab)


def experiment_data(data: dict[str, Any], data_dir: Any = None):
  """``(train, test, spec_fields)`` for :func:`jaxvision.sequence.run_inputs_experiment`
  from a config's ``data``: ``{"dataset": "negation", "train": N, "test": M, "length": L,
  "seed": s}`` or ``{"dataset": "imdb", "length": L, "max_vocab": V, "train": N|None,
  "test": M|None}`` (``data_dir``: TFDS's data dir)."""
  name = data.get("dataset", "negation")
  length = int(data.get("length", 24))
  if name == "negation":
    seed = int(data.get("seed", 0))
    tr = negation_corpus(int(data.get("train", 8000)), seed=seed)
    te = negation_corpus(int(data.get("test", 2000)), seed=seed + 1)
    train, test, vocab = text_sources(tr[0], tr[1], te[0], te[1], length=length,
                                      train_kinds=tr[2], test_kinds=te[2])
    kind_names = list(KINDS)
  elif name == "imdb":
    train, test, vocab = imdb_sources(data_dir, length=length,
                                      max_vocab=int(data.get("max_vocab", 20000)),
                                      train_examples=data.get("train"),
                                      test_examples=data.get("test"))
    kind_names = None
  else:
    raise ValueError(f"unknown text data set {name!r} (negation, imdb).")
  fields = {"inputs": {"tokens": ((length,), "int32")}, "num_classes": 2,
            "attributes": {"vocab_size": len(vocab)},
            "class_names": ("negative", "positive"),
            "metadata": {"vocabulary": vocab.words, "length": length, "dataset": name,
                         **({"kind_names": kind_names} if kind_names else {})}}
  return train, test, fields


def predict_texts(classifier, texts: Sequence[str | bytes]) -> tuple[np.ndarray, np.ndarray]:
  """Classes and softmax probabilities of a trained text classifier (an
  :class:`~jaxvision.sequence.InputsClassifier` whose metadata holds its vocabulary) on raw
  texts."""
  meta = classifier.spec.metadata
  if "vocabulary" not in meta:
    raise ValueError("the classifier's metadata has no vocabulary: not a text classifier.")
  ids = encode(Vocabulary(meta["vocabulary"]), list(texts), int(meta["length"]))
  classes, logits = classifier.predict({"tokens": ids})
  p = np.exp(logits - logits.max(-1, keepdims=True))
  return classes, p / p.sum(-1, keepdims=True)


def save_text_report(path, classifier, test, *, examples: int = 12, title: str = ""
                     ) -> str:
  """A PNG: accuracy per sentence kind (bars, chance marked) beside example test sentences
  with the true label and the model's prediction (green right, red wrong)."""
  import matplotlib  # pylint: disable=import-outside-toplevel
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # pylint: disable=import-outside-toplevel
  meta = classifier.spec.metadata
  vocab = Vocabulary(meta["vocabulary"])
  arrays = test.arrays
  preds, _ = classifier.predict({"tokens": arrays["tokens"]})
  labels = np.asarray(arrays["label"])
  fig, (ax0, ax1) = plt.subplots(1, 2, figsize=(13, 4.8),
                                 gridspec_kw={"width_ratios": [1, 2.3]})
  if "kind" in arrays:
    names = meta.get("kind_names", [str(k) for k in np.unique(arrays["kind"])])
    kinds = np.asarray(arrays["kind"])
    acc = [float(np.mean(preds[kinds == k] == labels[kinds == k])) if np.any(kinds == k)
           else 0.0 for k in range(len(names))]
  else:
    names, acc = ["all"], [float(np.mean(preds == labels))]
  ax0.bar(names, acc, color="#4c72b0")
  ax0.axhline(0.5, color="k", ls="--", lw=1, label="chance")
  for i, a in enumerate(acc):
    ax0.text(i, a + 0.01, f"{a:.3f}", ha="center")
  ax0.set_ylim(0, 1.08)
  ax0.set_ylabel("test accuracy")
  ax0.set_title("accuracy per sentence kind")
  ax0.legend(loc="lower right")
  ax1.axis("off")
  ax1.set_title("test sentences: truth -> prediction")
  rng = np.random.default_rng(0)
  idx = rng.choice(len(labels), size=min(examples, len(labels)), replace=False)
  cls = classifier.spec.class_names
  for row, i in enumerate(idx):
    words = [vocab.words[t] for t in arrays["tokens"][i] if t > 0]
    text = " ".join(words)
    if len(text) > 70:
      text = text[:67] + "..."
    ok = preds[i] == labels[i]
    ax1.text(0.0, 1 - (row + 0.5) / len(idx), f"{text}", fontsize=9, va="center",
             family="monospace")
    ax1.text(1.0, 1 - (row + 0.5) / len(idx), f"{cls[labels[i]]} -> {cls[preds[i]]}",
             fontsize=9, va="center", ha="right", color="green" if ok else "red")
  fig.suptitle(title or f"{classifier.spec.model}: test accuracy {np.mean(preds == labels):.3f}")
  fig.tight_layout()
  fig.savefig(path, dpi=90)
  plt.close(fig)
  return str(path)
