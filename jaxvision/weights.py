"""Self-describing weight files: the variables of a model plus what rebuilds it.

One flax msgpack file holds ``{"format", "version", "spec", "variables"}``: ``variables`` is
the model's ``{"params": ..., "batch_stats": ...}`` and ``spec`` a JSON object saying which
model it is and everything a user needs to run it (input size, class names, anchors,
post-processing, how it was trained). :class:`jaxvision.inference.Detector` and
:class:`~jaxvision.inference.Segmenter` read and write it; any other model can too::

  save_weights("model.msgpack", {"params": params}, {"model": "MyNet", "classes": 10})
  variables, spec = load_weights("model.msgpack")

Reading needs no template of the structure (msgpack keeps the nesting), so a file can be
opened before its model is built; :func:`check_variables` then compares it with the model's
own structure and names what differs.
"""

from __future__ import annotations

import json
import os
import pathlib
from typing import Any, Mapping

import jax
import numpy as np

__all__ = ["FORMAT", "WEIGHTS_FILE", "save_weights", "load_weights", "resolve_weights_path",
           "check_variables"]

FORMAT = "jaxvision.weights"
_VERSION = 1
WEIGHTS_FILE = "weights.msgpack"  # the name inside a workdir


def resolve_weights_path(path: str | os.PathLike) -> pathlib.Path:
  """``path`` itself, or ``path/weights.msgpack`` for a directory (a workdir).

  Raises:
    FileNotFoundError: neither exists (the message names both).
  """
  p = pathlib.Path(path).expanduser()
  if p.is_dir():
    inner = p / WEIGHTS_FILE
    if not inner.is_file():
      raise FileNotFoundError(
          f"no {WEIGHTS_FILE} in the directory {str(p)!r}: pass a weights file or a workdir "
          f"whose training finished (a run writes {WEIGHTS_FILE} at its end).")
    return inner
  if not p.is_file():
    raise FileNotFoundError(f"no weights file {str(p)!r}.")
  return p


def save_weights(path: str | os.PathLike, variables: Mapping[str, Any],
                 spec: Mapping[str, Any]) -> pathlib.Path:
  """Writes ``variables`` and the JSON-serialisable ``spec`` to one file, atomically.

  Args:
    path: the file to write (its directory is created); a directory gets
      ``weights.msgpack`` inside it.
    variables: the model's variables, e.g. ``{"params": ..., "batch_stats": ...}``.
    spec: what rebuilds the model; must survive ``json.dumps``.

  Returns:
    The path written.
  """
  from flax import serialization  # pylint: disable=import-outside-toplevel
  p = pathlib.Path(path).expanduser()
  if p.is_dir():
    p = p / WEIGHTS_FILE
  if not isinstance(spec, Mapping):
    raise TypeError(f"`spec` must be a mapping, got {type(spec).__name__}.")
  try:
    spec_text = json.dumps(dict(spec), sort_keys=True)
  except TypeError as e:
    raise TypeError(f"`spec` must be JSON-serialisable: {e}") from None
  state = serialization.to_state_dict(jax.device_get(dict(variables)))
  data = serialization.msgpack_serialize({"format": FORMAT, "version": _VERSION,
                                          "spec": spec_text, "variables": state})
  p.parent.mkdir(parents=True, exist_ok=True)
  tmp = p.with_name(p.name + f".tmp{os.getpid()}")
  tmp.write_bytes(data)
  tmp.replace(p)
  return p


def load_weights(path: str | os.PathLike) -> tuple[dict[str, Any], dict[str, Any]]:
  """``(variables, spec)`` from a file written by :func:`save_weights` (or a workdir).

  Raises:
    FileNotFoundError: no such file.
    ValueError: the file is not a jaxvision weights file (the message says what it is).
  """
  from flax import serialization  # pylint: disable=import-outside-toplevel
  p = resolve_weights_path(path)
  try:
    data = serialization.msgpack_restore(p.read_bytes())
  except Exception as e:  # pylint: disable=broad-except
    raise ValueError(f"{str(p)!r} is not a readable msgpack weights file "
                     f"({type(e).__name__}: {e}).") from None
  if not isinstance(data, dict) or data.get("format") != FORMAT:
    if isinstance(data, dict) and "params" in data:
      raise ValueError(
          f"{str(p)!r} holds bare variables without a model description (the format "
          f"before self-describing weights); rewrite it with "
          f"jaxvision.weights.save_weights(path, variables, spec).")
    raise ValueError(f"{str(p)!r} is not a {FORMAT} file.")
  if int(data.get("version", 0)) > _VERSION:
    raise ValueError(f"{str(p)!r} is version {data['version']} of {FORMAT}; this jaxvision "
                     f"reads up to version {_VERSION}.")
  spec = json.loads(data["spec"])
  return data["variables"], spec


def _flatten(tree: Any, prefix: str = "") -> dict[str, Any]:
  if isinstance(tree, Mapping):
    out = {}
    for k, v in tree.items():
      out.update(_flatten(v, f"{prefix}/{k}" if prefix else str(k)))
    return out
  return {prefix: tree}


def check_variables(variables: Mapping[str, Any], expected: Mapping[str, Any], *,
                    source: str, model: str) -> dict[str, Any]:
  """``variables`` with each leaf cast to ``expected``'s dtype, after checking that both have
  the same leaves and shapes.

  Args:
    variables: loaded variables.
    expected: the model's own variables or their ``jax.ShapeDtypeStruct``s
      (``jax.eval_shape(model.init, ...)``).
    source: what the variables came from (a path), for the message.
    model: the model's name, for the message.

  Raises:
    ValueError: missing, extra or differently shaped leaves (a few of each are named).
  """
  got, want = _flatten(variables), _flatten(expected)
  missing = sorted(set(want) - set(got))
  extra = sorted(set(got) - set(want))
  shapes = sorted(k for k in set(got) & set(want)
                  if tuple(np.shape(got[k])) != tuple(want[k].shape))
  if missing or extra or shapes:
    parts = []
    if missing:
      parts.append(f"{len(missing)} missing (e.g. {', '.join(missing[:3])})")
    if extra:
      parts.append(f"{len(extra)} unexpected (e.g. {', '.join(extra[:3])})")
    if shapes:
      parts.append("shapes differ: " + ", ".join(
          f"{k} {tuple(np.shape(got[k]))} vs {tuple(want[k].shape)}" for k in shapes[:3]))
    raise ValueError(f"the variables in {source} do not fit {model}: " + "; ".join(parts)
                     + ".")

  def cast(tree, ref):
    if isinstance(ref, Mapping):
      return {k: cast(tree[k], ref[k]) for k in ref}
    return np.asarray(tree, dtype=ref.dtype)

  return cast(variables, expected)
