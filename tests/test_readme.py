"""The README's tour runs as written."""

import pathlib
import re

README = pathlib.Path(__file__).resolve().parents[1] / "README.md"


def test_readme_python_blocks_run():
  blocks = re.findall(r"```python\n(.*?)```", README.read_text(), re.S)
  assert blocks, "README has no python example"
  for block in blocks:
    namespace = {}
    exec(compile(block, str(README), "exec"), namespace)  # noqa: S102 - our own README
  assert namespace["idx"].shape == (3,)


def test_readme_lists_every_public_op():
  from jaxvision import ops
  text = README.read_text()
  for name in ops.__all__:
    assert f"`{name}`" in text, f"README's table does not mention ops.{name}"
