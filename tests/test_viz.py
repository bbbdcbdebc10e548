"""Figures of jaxvision.viz: read back the PNGs and check the pixels a reader relies on."""

import numpy as np
import pytest
from PIL import Image

from benchmarks import run
from jaxvision import viz

NAMES = ["background", "cat", "dog", "cow", "owl", "bat"]
GREY = (100, 100, 100)


def read(path):
  with Image.open(path) as img:
    assert img.format == "PNG"
    return np.asarray(img.convert("RGB"))


def colour(c):
  return tuple(int(v) for v in viz.class_colours(len(NAMES))[c])


def is_colour(pixels, rgb):
  return np.all(pixels == np.array(rgb, np.uint8), axis=-1)


def runs(mask):
  """Number of runs of equal values along a 1-D boolean array."""
  return 1 + int(np.count_nonzero(mask[1:] != mask[:-1]))


# ---------------------------------------------------------------------------------------------
# Colours.


def test_class_colours_are_fixed_and_distinct():
  c = viz.class_colours(30)
  assert c.shape == (30, 3) and c.dtype == np.uint8
  assert (c[0] == 0).all()
  assert len({tuple(x) for x in c}) == 30  # VOC-sized sets get distinct colours too
  np.testing.assert_array_equal(viz.class_colours(11), c[:11])  # a prefix: stable colours
  assert viz.class_colours(0).shape == (0, 3)
  with pytest.raises(ValueError, match="num_classes"):
    viz.class_colours(-1)


def test_scenes_reexports_the_colours():
  from jaxvision import data
  from jaxvision.data import scenes
  assert scenes.class_colours is viz.class_colours is data.class_colours


# ---------------------------------------------------------------------------------------------
# Detections.


def _one_image():
  images = np.full((1, 40, 50, 3), GREY, np.uint8)
  det = [{"boxes": np.array([[5.0, 5.0, 30.0, 25.0]]), "scores": np.array([0.87]),
          "classes": np.array([4])}]
  gt = [{"boxes": np.array([[10.0, 8.0, 40.0, 35.0]]), "classes": np.array([5])}]
  return images, det, gt


def test_detections_solid_prediction_dashed_truth_filled_tag(tmp_path):
  images, det, gt = _one_image()
  path = tmp_path / "sub" / "det.png"
  layout = viz.save_detections(path, images, det, ground_truth=gt, class_names=NAMES,
                               min_tile=200, title="demo")
  pixels = read(path)
  assert pixels.shape[1::-1] == layout.size
  assert layout.scales == [4.0]  # 50 px -> 200 px: the smallest integer factor
  ox, oy = layout.origins[0]
  tile = pixels[oy:oy + 160, ox:ox + 200]
  line = 2  # 200 px tiles: 2 px lines
  # The prediction: a solid line of its class colour just inside the box edge, all round.
  x1, y1, x2, y2 = 20, 20, 119, 99  # tile pixels of [5, 5, 30, 25) at 4x
  assert is_colour(tile[y1 + 20:y2 - 20, x1:x1 + line], colour(4)).all()  # left edge
  assert is_colour(tile[y1 + 20:y2 - 20, x2 - line + 1:x2 + 1], colour(4)).all()  # right
  assert is_colour(tile[y2 - line + 1:y2 + 1, x1 + 30:x2 - 10], colour(4)).all()  # bottom
  assert is_colour(tile[y1 + 20:y2 - 20, x1 + line], GREY).all()  # the image inside
  # Its tag sits above the box: filled with the class colour (left padding column), with
  # text in another colour on it.
  assert is_colour(tile[y1 - 12:y1, x1:x1 + 2], colour(4)).all()
  tag = tile[y1 - 12:y1, x1 + 2:x1 + 40]
  assert is_colour(tag, colour(4)).mean() > 0.4
  assert (~is_colour(tag, colour(4)) & ~is_colour(tag, GREY)).any()  # the text
  # The ground truth: dashed, just outside its box edge (bottom edge row of [10, 8, 40, 35)
  # at 4x: pixels 40..159 x 32..139, drawn at rows 140..141): dashes with gaps.
  row = tile[141, 40:160]
  dash, gap = is_colour(row, colour(5)), is_colour(row, GREY)
  assert (dash | gap).all() and dash.any() and gap.any()
  assert runs(dash) >= 10  # alternating dash / gap
  left = tile[100:140, 38]  # left edge column, outside the box
  assert runs(is_colour(left, colour(5))) >= 4
  assert is_colour(tile[100:140, 40], GREY).all()  # not drawn over the box's own pixels


def test_detections_grid_layout_and_legend(tmp_path):
  images = np.random.default_rng(0).integers(0, 255, (5, 30, 40, 3), dtype=np.uint8)
  dets = [{"boxes": np.zeros((0, 4)), "scores": np.zeros(0), "classes": np.zeros(0, int)}
          for _ in range(5)]
  dets[2] = {"boxes": [[1, 1, 20, 20], [0, 0, 0, 0]], "scores": [0.5, 0.0],
             "classes": [1, 0]}  # class 0 = padding, skipped
  path = tmp_path / "grid.png"
  layout = viz.save_detections(path, images, dets, class_names=NAMES, columns=2)
  pixels = read(path)
  assert pixels.shape[1::-1] == layout.size
  assert layout.scales == [8.0] * 5  # 40 px -> 320 px by default
  xs = sorted({x for x, _ in layout.origins})
  ys = sorted({y for _, y in layout.origins})
  assert len(xs) == 2 and len(ys) == 3 and xs[1] - xs[0] >= 320 and ys[1] - ys[0] >= 240
  for x, y in layout.origins[:2]:
    np.testing.assert_array_equal(pixels[y:y + 8, x:x + 8],
                                  np.repeat(np.repeat(images[0 if x == xs[0] and y == ys[0]
                                                             else 1][:1, :1], 8, 0), 8, 1))
  legend = pixels[ys[-1] + 240:]  # under the last row: swatches of every class colour
  for c in range(1, len(NAMES)):
    assert is_colour(legend, colour(c)).sum() >= 50


def test_detections_side_by_side_draws_truth_and_predictions_apart(tmp_path):
  images = np.zeros((2, 30, 40, 3), np.uint8)
  dets = [{"boxes": [[2, 2, 20, 20]], "scores": [0.9], "classes": [1]},
          {"boxes": np.zeros((0, 4)), "scores": np.zeros(0), "classes": np.zeros(0, int)}]
  gts = [{"boxes": [[10, 5, 30, 25]], "classes": [2]}, {"boxes": [[1, 1, 9, 9]], "classes": [1]}]
  path = tmp_path / "pairs.png"
  layout = viz.save_detections(path, images, dets, ground_truth=gts, class_names=NAMES,
                               columns=2, side_by_side=True)
  pixels = read(path)
  assert len(layout.origins) == 4 and layout.scales == [8.0] * 4  # two tiles per image
  (x0, y0), (x1, y1) = layout.origins[:2]
  truth_tile, pred_tile = (pixels[y:y + 240, x:x + 320] for x, y in ((x0, y0), (x1, y1)))
  # The truth tile holds only the class-2 colour, the prediction tile only class 1's.
  assert is_colour(truth_tile, colour(2)).sum() > 50 and is_colour(truth_tile, colour(1)).sum() == 0
  assert is_colour(pred_tile, colour(1)).sum() > 50 and is_colour(pred_tile, colour(2)).sum() == 0
  # Without one of the two, side_by_side changes nothing.
  single = viz.save_detections(tmp_path / "one.png", images, dets, class_names=NAMES,
                               side_by_side=True)
  assert len(single.origins) == 2


def test_detections_of_images_of_different_sizes(tmp_path):
  images = [np.zeros((30, 40, 3), np.uint8), np.zeros((100, 1280), np.float32)]
  dets = [{"boxes": [[0, 0, 10, 10]], "scores": [1.0], "classes": [1]},
          {"boxes": [[100, 10, 1000, 90]], "scores": [0.5], "classes": [2]}]
  layout = viz.save_detections(tmp_path / "mixed.png", images, dets, class_names=NAMES)
  assert layout.scales == [8.0, 0.5]  # small magnified, large reduced to max_tile=640
  pixels = read(tmp_path / "mixed.png")
  x, y = layout.origins[1]
  assert is_colour(pixels[y + 20:y + 40, x + 50], colour(2)).all()  # box at 100 * 0.5


def test_save_scene_preview_draws_truth_masks_and_predictions(tmp_path):
  images = np.full((3, 20, 40, 3), GREY, np.uint8)
  boxes = np.zeros((3, 2, 4), np.float32)
  boxes[:, 0] = [2, 2, 20, 18]
  classes = np.zeros((3, 2), np.int32)
  classes[:, 0] = 3
  masks = np.zeros((3, 20, 40), np.uint8)
  masks[:, 5:10, 5:10] = 3
  layout = viz.save_scene_preview(tmp_path / "p.png", images, boxes, classes, masks=masks,
                                  class_names=NAMES)
  pixels = read(tmp_path / "p.png")
  x, y = layout.origins[0]
  s = int(layout.scales[0])
  # Ground truth without scores: dashed, outside the box.
  assert runs(is_colour(pixels[y + 2 * s - 2, x + 2 * s:x + 20 * s], colour(3))) >= 6
  # The mask under the image, in class colours.
  mask_half = pixels[y + 20 * s:y + 40 * s, x:x + 40 * s]
  np.testing.assert_array_equal(mask_half[::s, ::s], viz.class_colours(6)[masks[0]])
  # With scores: solid predictions.
  scores = np.full((3, 2), 0.5)
  layout = viz.save_scene_preview(tmp_path / "q.png", images[0], boxes[0], classes[0],
                                  scores=scores[0], class_names=NAMES)
  pixels = read(tmp_path / "q.png")
  x, y = layout.origins[0]
  s = int(layout.scales[0])
  assert is_colour(pixels[y + 2 * s:y + 18 * s, x + 2 * s], colour(3)).all()
  with pytest.raises(ValueError, match="classes"):
    viz.save_scene_preview(tmp_path / "x.png", images, boxes)
  with pytest.raises(ValueError, match="images"):
    viz.save_scene_preview(tmp_path / "x.png", images[..., 0])


def test_detections_reject_bad_input(tmp_path):
  images, det, gt = _one_image()
  out = tmp_path / "x.png"
  with pytest.raises(ValueError, match="detections"):
    viz.save_detections(out, images, det * 2, class_names=NAMES)
  with pytest.raises(ValueError, match="detections"):
    viz.save_detections(out, images, [{"boxes": [[0, 0, 1, 1]], "scores": [1],
                                       "classes": [6]}], class_names=NAMES)
  with pytest.raises(ValueError, match="scores"):
    viz.save_detections(out, images, [{"boxes": [[0, 0, 1, 1]], "classes": [1]}],
                        class_names=NAMES)
  with pytest.raises(ValueError, match="ground_truth"):
    viz.save_detections(out, images, det, ground_truth=[{"boxes": [0, 0, 1, 1],
                                                         "classes": [1, 2]}],
                        class_names=NAMES)
  with pytest.raises(ValueError, match="images"):
    viz.save_detections(out, images[..., :2], det, class_names=NAMES)
  with pytest.raises(ValueError, match="detections"):
    viz.save_detections(out, images, [{"boxes": [[0, 0, 1, 1]], "scores": [1],
                                       "classes": [1.5]}], class_names=NAMES)
  with pytest.raises(ValueError, match="columns"):
    viz.save_detections(out, images, det, class_names=NAMES, columns=0)
  with pytest.raises(ValueError, match="masks"):
    viz.save_detections(out, images, det, class_names=NAMES, masks=np.zeros((1, 5, 5), int))
  assert not out.exists()
  # Without scores the dicts need none.
  viz.save_detections(out, images, [{"boxes": [[0, 0, 1, 1]], "classes": [1]}],
                      class_names=NAMES, scores=False)
  assert out.exists()


# ---------------------------------------------------------------------------------------------
# Segmentation.


def test_triptychs_paint_fixed_class_colours(tmp_path):
  images = np.zeros((2, 8, 10, 3), np.uint8)
  labels = np.zeros((2, 8, 10), np.uint8)
  labels[0, 2:4, 3:5] = 4
  preds = labels.copy()
  preds[1, 0, 0] = 255  # not a class: grey
  path = tmp_path / "t.png"
  layout = viz.save_segmentation_triptychs(path, images, labels, preds, class_names=NAMES,
                                           scale=1, title="demo")
  pixels = read(path)
  assert pixels.shape[1::-1] == layout.size and len(layout.origins) == 6
  for k in (1, 2):  # ground truth and prediction of row 0
    x, y = layout.origins[k]
    np.testing.assert_array_equal(pixels[y:y + 8, x:x + 10], viz.class_colours(6)[labels[0]])
  x, y = layout.origins[5]
  assert tuple(pixels[y, x]) == (160, 160, 160)
  # Default scale: tiles at least 200 px wide.
  layout = viz.save_segmentation_triptychs(path, images, labels, preds, class_names=NAMES)
  assert layout.scales == [20.0, 20.0]


def test_triptychs_without_labels_and_of_different_sizes(tmp_path):
  images = [np.zeros((8, 10, 3), np.uint8), np.zeros((960, 960, 3), np.uint8)]
  preds = [np.ones((8, 10), np.int64), np.full((960, 960), 2)]
  layout = viz.save_segmentation_triptychs(tmp_path / "t.png", images, None, preds,
                                           class_names=NAMES)
  assert len(layout.origins) == 4 and layout.scales == [20.0, 0.5]
  pixels = read(tmp_path / "t.png")
  x, y = layout.origins[3]
  assert is_colour(pixels[y:y + 480, x:x + 480], colour(2)).all()


def test_triptychs_reject_bad_input(tmp_path):
  images = np.zeros((2, 8, 10, 3), np.uint8)
  labels = np.zeros((2, 8, 10), np.int32)
  with pytest.raises(ValueError, match="predictions"):
    viz.save_segmentation_triptychs(tmp_path / "t.png", images, labels, labels[:, :4],
                                    class_names=NAMES)
  with pytest.raises(ValueError, match="labels"):
    viz.save_segmentation_triptychs(tmp_path / "t.png", images, labels.astype(float), labels,
                                    class_names=NAMES)
  with pytest.raises(ValueError, match="scale"):
    viz.save_segmentation_triptychs(tmp_path / "t.png", images, labels, labels,
                                    class_names=NAMES, scale=0)


# ---------------------------------------------------------------------------------------------
# Confusion matrices.


def test_hungarian_order_puts_the_matching_on_the_diagonal():
  rng = np.random.default_rng(0)
  perm = rng.permutation(10)
  cm = rng.integers(0, 20, (10, 10))
  cm[np.arange(10), perm] += 500  # class i mostly in cluster perm[i]
  order = viz.hungarian_order(cm)
  np.testing.assert_array_equal(order, perm)
  # More clusters than classes: unmatched clusters come last, in index order.
  wide = np.array([[0, 0, 9, 1], [7, 0, 0, 2]])
  np.testing.assert_array_equal(viz.hungarian_order(wide), [2, 0, 1, 3])
  # Fewer clusters than classes: the matched columns in the order of their rows.
  tall = np.array([[0, 1], [9, 0], [0, 8]])
  np.testing.assert_array_equal(viz.hungarian_order(tall), [0, 1])
  np.testing.assert_array_equal(viz.hungarian_order(tall[::-1]), [1, 0])


def test_confusion_matrix_columns_follow_the_assignment(tmp_path):
  rng = np.random.default_rng(1)
  perm = rng.permutation(4)
  cm = rng.integers(0, 5, (4, 4))
  cm[np.arange(4), perm] += 100
  shown = viz.save_confusion_matrix(cm, tmp_path / "cm.png", column_order="hungarian",
                                    class_names=list("abcd"), title="clusters")
  np.testing.assert_array_equal(shown, cm[:, perm])
  assert (np.diag(shown) >= 100).all()
  assert read(tmp_path / "cm.png").shape[0] > 300
  explicit = viz.save_confusion_matrix(cm, tmp_path / "cm2.png", column_order=[3, 2, 1, 0],
                                       column_labels=["w", "x", "y", "z"])
  np.testing.assert_array_equal(explicit, cm[:, ::-1])
  np.testing.assert_array_equal(viz.save_confusion_matrix(cm, tmp_path / "cm3.png"), cm)
  tall = np.array([[0, 1], [9, 0], [0, 8]])  # more classes than clusters
  np.testing.assert_array_equal(
      viz.save_confusion_matrix(tall, tmp_path / "cm4.png", column_order="hungarian"), tall)
  with pytest.raises(ValueError, match="column_order"):
    viz.save_confusion_matrix(cm, tmp_path / "x.png", column_order=[0, 0, 1, 2])
  with pytest.raises(ValueError, match="column_order"):
    viz.save_confusion_matrix(cm, tmp_path / "x.png", column_order="best")
  with pytest.raises(ValueError, match="column_labels"):
    viz.save_confusion_matrix(cm, tmp_path / "x.png", column_labels=["a"])
  with pytest.raises(ValueError, match="cm"):
    viz.save_confusion_matrix(-cm, tmp_path / "x.png")


# ---------------------------------------------------------------------------------------------
# Line plots and the benchmark plots.


def test_line_plot_needs_two_points_and_distinct_xs(tmp_path):
  path = tmp_path / "p.png"
  assert not viz.save_line_plot(path, {"a": ([1], [2]), "b": ([5], [1])}, xlabel="N",
                                ylabel="s")
  assert not path.exists()  # no single-point "plot"
  assert viz.save_line_plot(path, {("a", "x"): ([1, 2], [3, 4]), ("a", "y"): ([1], [2])},
                            xlabel="N", ylabel="s", log_x=True, log_y=True, note="quick")
  assert read(path).shape[:2] == (550, 990)
  with pytest.raises(ValueError, match="series"):
    viz.save_line_plot(path, {"a": ([1, 1], [2, 3])}, xlabel="N", ylabel="s")
  with pytest.raises(ValueError, match="series"):
    viz.save_line_plot(path, {"a": ([0, 1], [2, 3])}, xlabel="N", ylabel="s", log_x=True)
  with pytest.raises(ValueError, match="series"):
    viz.save_line_plot(path, {"a": ([1, 2], [2])}, xlabel="N", ylabel="s")
  with pytest.raises(ValueError, match="series"):
    viz.save_line_plot(path, {}, xlabel="N", ylabel="s")


def _row(case, impl, size, median, family="nms"):
  return {"family": family, "case": case, "impl": impl, "size": size, "median_s": median}


def test_benchmark_series_are_keyed_by_implementation_and_setting(tmp_path):
  assert run.case_setting("nms uniform N=5000 iou=0.7", 5000) == "nms uniform iou=0.7"
  assert run.case_setting("box_iou 5000x5000", 5000) == "box_iou NxN"
  assert run.case_setting("iic_loss fwd+bwd 1000x50", 1000) == "iic_loss fwd+bwd Nx50"
  rows = [_row(f"nms uniform N={n} iou={t}", impl, n, 1e-6 * n * (1 + t))
          for n in (1000, 5000) for t in (0.5, 0.7) for impl in ("jaxvision", "torchvision")]
  rows += [_row("nms batch 16x5000 uniform iou=0.5", "jaxvision", 80000, 1.0),
           _row("nms uniform N=1000 iou=0.5", "tensorflow", 1000, None),
           _row("multiclass_nms SSD-like 8x8732x20", "jaxvision", 8732, 0.02,
                family="multiclass_nms")]
  series = run.plot_series(rows, "nms")
  assert set(series) == {(impl, f"nms uniform iou={t}") for impl in ("jaxvision", "torchvision")
                         for t in (0.5, 0.7)}  # no batch case, no untimed row
  xs, ys = series[("jaxvision", "nms uniform iou=0.7")]
  assert xs == [1000, 5000]
  np.testing.assert_allclose(ys, [1.7e-3, 8.5e-3])
  written = run.plot(rows, str(tmp_path / "bench"), note="test")
  assert [p.rsplit("-", 1)[1] for p in written] == ["nms.png"]  # one size: no plot
  assert not (tmp_path / "bench-multiclass_nms.png").exists()
