"""Figures written straight to PNG files (matplotlib's Agg backend; no display needed).

Each function builds its own ``matplotlib.figure.Figure`` on an Agg canvas rather than going
through ``pyplot``: no global backend switch, no figure registry to leak, safe in scripts,
tests and threads.

So far: :func:`save_confusion_matrix`.
"""

from __future__ import annotations

import os
from typing import Any, Sequence

import numpy as np

__all__ = ["save_confusion_matrix"]


def save_confusion_matrix(
    cm: Any,
    path: str | os.PathLike,
    *,
    title: str | None = None,
    class_names: Sequence[str] | None = None,
) -> None:
  """Writes a confusion (or contingency) matrix as a PNG heat map with the counts printed.

  Args:
    cm: ``[R, K]`` non-negative counts, rows the true classes and columns the predictions
      (e.g. :func:`jaxvision.metrics.clustering.contingency_matrix`); NumPy or JAX.
    path: the PNG file to write (its directory must exist).
    title: the figure title, if any.
    class_names: ``R`` row names; also used for the columns when ``K == R``. Indices
      otherwise.

  Returns:
    None. The file at ``path`` holds the PNG.

  >>> import tempfile
  >>> with tempfile.TemporaryDirectory() as d:
  ...   save_confusion_matrix([[5, 1], [0, 4]], os.path.join(d, "cm.png"), title="demo")
  ...   os.path.getsize(os.path.join(d, "cm.png")) > 0
  True
  """
  # pylint: disable=import-outside-toplevel
  from matplotlib.backends.backend_agg import FigureCanvasAgg
  from matplotlib.figure import Figure

  cm = np.asarray(cm)
  if cm.ndim != 2 or cm.shape[0] == 0 or cm.shape[1] == 0:
    raise ValueError(f"`cm` must have shape [R, K] with R, K > 0, got shape {cm.shape}.")
  if not (np.issubdtype(cm.dtype, np.number) and np.all(np.isfinite(cm)) and cm.min() >= 0):
    raise ValueError("`cm` must hold finite, non-negative numbers.")
  rows, cols = cm.shape
  if class_names is not None:
    class_names = [str(name) for name in class_names]
    if len(class_names) != rows:
      raise ValueError(f"`class_names` must have {rows} names (one per row), got "
                       f"{len(class_names)}.")
  row_names = class_names or [str(i) for i in range(rows)]
  col_names = class_names if class_names and cols == rows else [str(k) for k in range(cols)]

  size = float(np.clip(0.45 * max(rows, cols) + 2.0, 4.0, 16.0))
  fig = Figure(figsize=(size, size))
  FigureCanvasAgg(fig)
  ax = fig.add_subplot()
  image = ax.imshow(cm, cmap="Blues", interpolation="nearest", aspect="auto")
  fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04)
  ax.set_xlabel("predicted")
  ax.set_ylabel("true")
  ax.set_xticks(range(cols), col_names, rotation=90 if cols > 10 else 0)
  ax.set_yticks(range(rows), row_names)
  if title:
    ax.set_title(title)
  if rows * cols <= 400:  # print the counts while they stay legible
    threshold = cm.max() / 2.0
    integral = np.issubdtype(cm.dtype, np.integer) or np.all(cm == np.round(cm))
    for i in range(rows):
      for k in range(cols):
        text = f"{int(cm[i, k])}" if integral else f"{cm[i, k]:.2g}"
        ax.text(k, i, text, ha="center", va="center", fontsize=8,
                color="white" if cm[i, k] > threshold else "black")
  fig.tight_layout()
  fig.savefig(os.fspath(path), format="png", dpi=100)
