"""The README's tour runs as written."""

import pathlib
import re

README = pathlib.Path(__file__).resolve().parents[1] / "README.md"


def test_readme_python_blocks_run(monkeypatch):
  monkeypatch.chdir(README.parent)  # the blocks use repository-relative paths
  blocks = re.findall(r"```python\n(.*?)```", README.read_text(), re.S)
  assert blocks, "README has no python example"
  namespaces = []
  for block in blocks:
    namespaces.append({})
    exec(compile(block, str(README), "exec"), namespaces[-1])  # noqa: S102 - our own README
  assert namespaces[0]["idx"].shape == (3,)
  inference = namespaces[1]
  assert inference["mask"].shape == (300, 500) and len(inference["per_image"]) == 3
  assert inference["boxes"].shape == (32, 4)


def test_readme_lists_every_public_op():
  from jaxvision import ops
  text = README.read_text()
  for name in ops.__all__:
    assert f"`{name}`" in text, f"README's table does not mention ops.{name}"
