"""`make demo`'s NMS example runs and writes its figure."""

from experiments import demo


def test_nms_example_writes_png(tmp_path, capsys):
  demo.nms_example(tmp_path)
  png = tmp_path / "nms.png"
  assert png.stat().st_size > 10_000
  assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
  out = capsys.readouterr().out
  assert "kept" in out


def test_scene_proposals_are_detector_like():
  image, gt = demo.make_scene(seed=3)
  boxes, scores = demo.detector_proposals(gt, seed=3)
  assert image.shape == (240, 320, 3) and 0 <= image.min() and image.max() <= 1
  assert boxes.shape == (len(gt) * 40 + 30, 4) and scores.shape == (len(boxes),)
  assert ((scores > 0) & (scores <= 1)).all()
