"""Visual question answering on digit scenes: scenes, generated questions with class answers,
and the picture of a model's answers (models in :mod:`jaxvision.models.vqa`).

A scene is ``uint8 [64, 64, 3]``: 1-4 MNIST digits, all different, each in its own colour
(:data:`COLOURS`) and its own column of a 4 x 4 grid of 16-px cells (so "left of" is never
ambiguous), on black. Questions (:data:`QUESTION_TYPES`), one of each per scene:

* ``count``: "how many digits are there ?" -> "1" .. "4";
* ``exists``: "is there a 7 ?" -> "yes" / "no" (half of each);
* ``left_of``: "what digit is left of the 3 ?" (a digit in the scene) -> the digit in the
  nearest column to its left, or "none";
* ``colour``: "what colour is the 5 ?" (a digit in the scene) -> a colour name.

Answers are classes of :data:`ANSWERS`; questions are token ids of :data:`QUESTION_WORDS`
(0 = padding), length :data:`QUESTION_LENGTH`. Records: ``{"image", "question", "label",
"qtype"}``. What the question alone predicts (the language prior) is measured by the
question-only model; ``left_of`` needs relations between objects.
"""

from __future__ import annotations

import os
from typing import Any, Mapping, Sequence

import numpy as np
from PIL import Image

from jaxvision.data import ArraySource

__all__ = ["COLOURS", "ANSWERS", "QUESTION_TYPES", "QUESTION_WORDS", "QUESTION_LENGTH",
           "encode_question", "decode_question", "make_scene", "vqa_records", "vqa_sources",
           "experiment_data", "answer_questions", "save_vqa_examples"]

COLOURS = {"red": (230, 40, 40), "green": (40, 200, 60), "blue": (60, 100, 255),
           "yellow": (240, 220, 40), "magenta": (220, 60, 220), "cyan": (40, 220, 230)}
ANSWERS = tuple(str(d) for d in range(10)) + ("yes", "no", "none") + tuple(COLOURS)
QUESTION_TYPES = ("count", "exists", "left_of", "colour")
QUESTION_WORDS = ("<pad>", "how", "many", "digits", "are", "there", "is", "a", "what", "digit",
                  "left", "of", "the", "colour", "?") + tuple(str(d) for d in range(10))
QUESTION_LENGTH = 9
_WORD_ID = {w: i for i, w in enumerate(QUESTION_WORDS)}
_CELL, _GRID, _DIGIT = 16, 4, 14


def encode_question(text: str) -> np.ndarray:
  """``int32 [QUESTION_LENGTH]`` ids of a question in :data:`QUESTION_WORDS` (padded)."""
  words = text.lower().replace("?", " ?").split()
  unknown = [w for w in words if w not in _WORD_ID]
  if unknown:
    raise ValueError(f"`text`: words outside the question vocabulary: {unknown} (known: "
                     f"{list(QUESTION_WORDS[1:])}).")
  if len(words) > QUESTION_LENGTH:
    raise ValueError(f"`text` has {len(words)} words; at most {QUESTION_LENGTH}.")
  out = np.zeros(QUESTION_LENGTH, np.int32)
  out[:len(words)] = [_WORD_ID[w] for w in words]
  return out


def decode_question(ids: Sequence[int]) -> str:
  return " ".join(QUESTION_WORDS[int(i)] for i in ids if int(i) > 0)


def make_scene(digits: np.ndarray, labels: np.ndarray, rng: np.random.Generator
               ) -> tuple[np.ndarray, list[dict[str, Any]]]:
  """One scene from the ``[N, 28, 28]`` digit pool: ``(image, objects)`` with objects
  ``{"digit", "colour", "row", "col"}``."""
  count = int(rng.integers(1, _GRID + 1))
  cols = rng.choice(_GRID, size=count, replace=False)
  rows = rng.integers(0, _GRID, size=count)
  colours = rng.choice(len(COLOURS), size=count, replace=False)
  classes = rng.choice(10, size=count, replace=False)
  by_class = [np.flatnonzero(labels == c) for c in range(10)]
  image = np.zeros((_CELL * _GRID, _CELL * _GRID, 3), np.float32)
  objects = []
  names = list(COLOURS)
  for c, r, k, d in zip(cols, rows, colours, classes):
    pool = by_class[int(d)]
    if len(pool) == 0:
      raise ValueError(f"the digit pool has no {int(d)}; need every digit 0-9.")
    ink = np.asarray(Image.fromarray(digits[int(rng.choice(pool))]).resize(
        (_DIGIT, _DIGIT), Image.BILINEAR), np.float32) / 255.0
    y0 = int(r) * _CELL + int(rng.integers(0, _CELL - _DIGIT + 1))
    x0 = int(c) * _CELL + int(rng.integers(0, _CELL - _DIGIT + 1))
    patch = ink[..., None] * np.asarray(COLOURS[names[int(k)]], np.float32)[None, None]
    image[y0:y0 + _DIGIT, x0:x0 + _DIGIT] = np.maximum(image[y0:y0 + _DIGIT, x0:x0 + _DIGIT],
                                                       patch)
    objects.append({"digit": int(d), "colour": names[int(k)], "row": int(r), "col": int(c)})
  return np.clip(image, 0, 255).astype(np.uint8), objects


def _questions(objects, rng) -> list[tuple[str, str, int]]:
  """One ``(question, answer, type)`` of each type about a scene."""
  present = [o["digit"] for o in objects]
  out = [("how many digits are there ?", str(len(objects)), 0)]
  if rng.random() < 0.5:
    d = int(rng.choice(present))
    out.append((f"is there a {d} ?", "yes", 1))
  else:
    d = int(rng.choice([x for x in range(10) if x not in present]))
    out.append((f"is there a {d} ?", "no", 1))
  o = objects[int(rng.integers(len(objects)))]
  left = [p for p in objects if p["col"] < o["col"]]
  answer = str(max(left, key=lambda p: p["col"])["digit"]) if left else "none"
  out.append((f"what digit is left of the {o['digit']} ?", answer, 2))
  o = objects[int(rng.integers(len(objects)))]
  out.append((f"what colour is the {o['digit']} ?", o["colour"], 3))
  return out


def vqa_records(digits: np.ndarray, labels: np.ndarray, num_scenes: int, *, seed: int = 0
                ) -> dict[str, np.ndarray]:
  """Arrays of ``4 * num_scenes`` records (each scene's image repeated for its four
  questions); scene ``i`` depends only on ``(seed, i)``."""
  digits = np.asarray(digits)
  if digits.ndim == 4 and digits.shape[-1] == 1:
    digits = digits[..., 0]
  labels = np.asarray(labels)
  if digits.ndim != 3 or labels.shape != (len(digits),):
    raise ValueError(f"`digits` must be [N, H, W] with `labels` [N], got {digits.shape} and "
                     f"{labels.shape}.")
  if int(num_scenes) < 1:
    raise ValueError(f"`num_scenes` must be >= 1, got {num_scenes!r}.")
  images, questions, answers, qtypes, scene = [], [], [], [], []
  answer_id = {a: i for i, a in enumerate(ANSWERS)}
  for i in range(int(num_scenes)):
    rng = np.random.default_rng((seed, i))
    image, objects = make_scene(digits, labels, rng)
    for q, a, t in _questions(objects, rng):
      images.append(image)
      questions.append(encode_question(q))
      answers.append(answer_id[a])
      qtypes.append(t)
      scene.append(i)
  return {"image": np.stack(images), "question": np.stack(questions),
          "label": np.asarray(answers, np.int32), "qtype": np.asarray(qtypes, np.int32),
          "scene": np.asarray(scene, np.int32)}


def vqa_sources(train_digits, train_labels, test_digits, test_labels, *, train_scenes: int,
                test_scenes: int, seed: int = 0):
  """``(train, test)`` sources: training scenes from the training digits, test scenes from
  the test digits."""
  return (ArraySource(vqa_records(train_digits, train_labels, train_scenes, seed=seed)),
          ArraySource(vqa_records(test_digits, test_labels, test_scenes, seed=seed + 1)))


def experiment_data(data: Mapping[str, Any], data_dir: Any = None):
  """``(train, test, spec_fields)`` for :func:`jaxvision.sequence.run_inputs_experiment`
  (MNIST from ``data_dir``; ``data = {"train": scenes, "test": scenes, "seed": s}``)."""
  from jaxvision.data import MnistSource  # pylint: disable=import-outside-toplevel
  tr, te = MnistSource("train", data_dir=data_dir), MnistSource("test", data_dir=data_dir)
  train, test = vqa_sources(tr.arrays["image"], tr.arrays["label"], te.arrays["image"],
                            te.arrays["label"], train_scenes=int(data.get("train", 5000)),
                            test_scenes=int(data.get("test", 1000)),
                            seed=int(data.get("seed", 0)))
  fields = {"inputs": {"image": ((64, 64, 3), "uint8"),
                       "question": ((QUESTION_LENGTH,), "int32")},
            "num_classes": len(ANSWERS), "class_names": ANSWERS,
            "attributes": {"vocab_size": len(QUESTION_WORDS)},
            "metadata": {"qtype_names": list(QUESTION_TYPES)}}
  return train, test, fields


def answer_questions(classifier, image: np.ndarray, questions: Sequence[str]) -> list[str]:
  """A trained VQA classifier's answers to ``questions`` about one ``uint8 [64, 64, 3]``
  scene."""
  q = np.stack([encode_question(t) for t in questions])
  im = np.repeat(np.asarray(image)[None], len(q), 0)
  classes, _ = classifier.predict({"image": im, "question": q})
  return [classifier.spec.class_names[int(c)] for c in classes]


def save_vqa_examples(path: str | os.PathLike, data, predictions: Mapping[str, np.ndarray], *,
                      scenes: Sequence[int] = (0, 1, 2, 3), title: str = "") -> str:
  """A PNG: each scene beside its four questions, the true answer and each model's answer
  (green right, red wrong). ``predictions``: model name -> predicted answer ids for every
  record of ``data``."""
  import matplotlib  # pylint: disable=import-outside-toplevel
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # pylint: disable=import-outside-toplevel
  arrays = data if isinstance(data, Mapping) else data.arrays
  fig, axes = plt.subplots(len(scenes), 2, figsize=(11, 2.4 * len(scenes)),
                           gridspec_kw={"width_ratios": [1, 3.2]}, squeeze=False)
  for row, s in enumerate(scenes):
    idx = np.flatnonzero(np.asarray(arrays["scene"]) == s)
    axes[row, 0].imshow(arrays["image"][idx[0]])
    axes[row, 0].set_xticks([])
    axes[row, 0].set_yticks([])
    axes[row, 0].set_title(f"test scene {s}", fontsize=9)
    ax = axes[row, 1]
    ax.axis("off")
    names = list(predictions)
    xs = [0.0, 0.52] + [0.66 + 0.34 * k / max(len(names), 1) for k in range(len(names))]
    for x, h in zip(xs, ["question", "truth", *names]):
      ax.text(x, 0.95, h, fontsize=8, va="top", weight="bold")
    for j, i in enumerate(idx):
      y = 0.95 - 0.2 * (j + 1)
      truth = ANSWERS[int(arrays["label"][i])]
      ax.text(xs[0], y, decode_question(arrays["question"][i]), fontsize=8, va="top")
      ax.text(xs[1], y, truth, fontsize=8, va="top")
      for k, n in enumerate(names):
        p = ANSWERS[int(predictions[n][i])]
        ax.text(xs[2 + k], y, p, fontsize=8, va="top", color="green" if p == truth else "red")
  fig.suptitle(title, fontsize=10)
  fig.tight_layout()
  fig.savefig(path, dpi=85)
  plt.close(fig)
  return str(path)
