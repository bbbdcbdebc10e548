"""Tests for jaxvision.data.pipeline: order, coverage, determinism and resumable state."""

import itertools
import json

import grain
import numpy as np
import pytest

from jaxvision.data import ArraySource, MnistSource, make_pipeline

N = 23  # records in the test source: not a multiple of any batch size used here

PATHS = [pytest.param(True, id="batch_path"), pytest.param(False, id="record_path")]


def source(n: int = N) -> ArraySource:
  ids = np.arange(n, dtype=np.int32)
  images = (ids[:, None, None] + np.zeros((1, 3, 2), np.int32)).astype(np.uint8)
  return ArraySource({"id": ids, "image": images})


class ListSource:
  """A minimal grain source without ``get_batch``: the record path only."""

  def __init__(self, n):
    self.n = n

  def __len__(self):
    return self.n

  def __getitem__(self, i):
    return {"id": np.int32(i)}


def take(ds_or_it, k):
  it = iter(ds_or_it) if isinstance(ds_or_it, grain.IterDataset) else ds_or_it
  return [next(it)["id"].tolist() for _ in range(k)]


@pytest.mark.parametrize("batch_indexing", PATHS)
def test_same_seed_same_batches_different_seed_different_order(batch_indexing):
  kw = dict(batch_size=5, batch_indexing=batch_indexing, num_threads=0)
  first = take(make_pipeline(source(), seed=7, **kw), 12)  # crosses two epoch boundaries
  again = take(make_pipeline(source(), seed=7, **kw), 12)
  other = take(make_pipeline(source(), seed=8, **kw), 12)
  assert first == again
  assert first != other
  flat, flat_other = sum(first, []), sum(other, [])
  assert sorted(flat[:N]) == sorted(flat_other[:N]) == list(range(N))


@pytest.mark.parametrize("batch_indexing", PATHS)
@pytest.mark.parametrize("batch_size", [1, 4, N, 40])
def test_every_example_once_per_epoch(batch_indexing, batch_size):
  ds = make_pipeline(source(), batch_size=batch_size, seed=3, num_epochs=3,
                     drop_remainder=False, batch_indexing=batch_indexing, num_threads=1)
  batches = [b["id"] for b in ds]
  total = 3 * N
  assert [len(b) for b in batches] == (
      [batch_size] * (total // batch_size) + ([total % batch_size] if total % batch_size else []))
  stream = np.concatenate(batches)
  epochs = stream.reshape(3, N)
  for epoch in epochs:
    assert sorted(epoch.tolist()) == list(range(N))
  assert len({tuple(e) for e in epochs.tolist()}) == 3  # reshuffled every epoch
  batch = next(iter(ds))
  np.testing.assert_array_equal(batch["image"][:, 0, 0], batch["id"])
  assert batch["image"].dtype == np.uint8 and batch["image"].shape[1:] == (3, 2)


@pytest.mark.parametrize("batch_indexing", PATHS)
def test_no_shuffle_is_source_order_and_drop_remainder(batch_indexing):
  ds = make_pipeline(source(), batch_size=5, seed=0, shuffle=False, num_epochs=2,
                     batch_indexing=batch_indexing, num_threads=0)
  batches = [b["id"].tolist() for b in ds]
  stream = list(range(N)) * 2
  assert batches == [stream[i:i + 5] for i in range(0, 2 * N - 4, 5)]
  assert len(batches) == (2 * N) // 5


@pytest.mark.parametrize("batch_indexing", PATHS)
def test_batch_shapes_are_static_forever(batch_indexing):
  ds = make_pipeline(source(), batch_size=6, seed=1, batch_indexing=batch_indexing,
                     num_threads=2)
  shapes = {(b["id"].shape, b["image"].shape, b["id"].dtype.name, b["image"].dtype.name)
            for b in itertools.islice(ds, 20)}  # 120 records = 5+ epochs
  assert shapes == {((6,), (6, 3, 2), "int32", "uint8")}


@pytest.mark.parametrize("batch_indexing", PATHS)
@pytest.mark.parametrize("num_threads", [0, 2])
@pytest.mark.parametrize("skip", [0, 3, 4, 9])  # 4 batches of 6 = 24 > N: mid-epoch 2 at 9
def test_state_round_trip_mid_epoch(batch_indexing, num_threads, skip):
  def make():
    return make_pipeline(source(), batch_size=6, seed=11, batch_indexing=batch_indexing,
                         num_threads=num_threads)

  it = iter(make())
  take(it, skip)
  state = it.get_state()
  state = json.loads(json.dumps(state))  # plain data: checkpointable as JSON
  expected = take(it, 8)

  restored = iter(make())  # a fresh pipeline, as after a restart
  take(restored, 2)  # wherever it was, set_state rewinds/advances it exactly
  restored.set_state(state)
  assert take(restored, 8) == expected
  restored.set_state(state)  # and again, on the same iterator
  assert take(restored, 8) == expected


@pytest.mark.parametrize("batch_indexing", PATHS)
def test_transform_is_applied_per_record(batch_indexing):
  def transform(record):
    return {"id": record["id"], "double": record["image"].astype(np.float32) * 2}

  plain = take(make_pipeline(source(), batch_size=4, seed=5, num_threads=0,
                             batch_indexing=batch_indexing), 7)
  ds = make_pipeline(source(), batch_size=4, seed=5, transform=transform, num_threads=0,
                     batch_indexing=batch_indexing)
  batches = list(itertools.islice(ds, 7))
  assert [b["id"].tolist() for b in batches] == plain
  for b in batches:
    assert b["double"].dtype == np.float32 and b["double"].shape == (4, 3, 2)
    np.testing.assert_array_equal(b["double"][:, 1, 1], 2 * b["id"])


def test_record_path_on_a_plain_source_and_auto_choice():
  ds = make_pipeline(ListSource(10), batch_size=3, seed=2, num_epochs=1, drop_remainder=False,
                     num_threads=0)
  assert sorted(sum(take(ds, 4), [])) == list(range(10))
  # The auto choice takes the batch path for a source with get_batch...
  auto = take(make_pipeline(source(), batch_size=3, seed=2, num_threads=0), 5)
  fast = take(make_pipeline(source(), batch_size=3, seed=2, num_threads=0,
                            batch_indexing=True), 5)
  assert auto == fast
  # ...and matches what grain's own recipe does on the record path.
  ref = (grain.MapDataset.source(ListSource(N)).seed(2).shuffle().repeat().batch(3)
         .to_iter_dataset(grain.ReadOptions(num_threads=0)))
  assert take(ref, 5) == take(make_pipeline(source(), batch_size=3, seed=2, num_threads=0,
                                            batch_indexing=False), 5)


def test_mnist_source_pipeline_batches():
  rng = np.random.default_rng(0)
  images = rng.integers(0, 256, (50, 28, 28), dtype=np.uint8)
  labels = rng.integers(0, 10, 50)
  src = MnistSource.from_arrays(images, labels)
  batch = next(iter(make_pipeline(src, batch_size=16, seed=0, num_threads=0)))
  assert batch["image"].shape == (16, 28, 28, 1) and batch["image"].dtype == np.uint8
  assert batch["label"].shape == (16,) and batch["label"].dtype == np.int32
  # Each image arrives with its own label.
  for image, label in zip(batch["image"], batch["label"]):
    matches = np.flatnonzero((images == image[..., 0]).all(axis=(1, 2)))
    assert labels[matches[0]] == label


def test_array_source_validation():
  with pytest.raises(TypeError, match="arrays"):
    ArraySource([np.zeros(3)])
  with pytest.raises(ValueError, match="same first dimension"):
    ArraySource({"a": np.zeros(3), "b": np.zeros(4)})
  with pytest.raises(ValueError, match="scalar"):
    ArraySource({"a": np.float32(1.0)})
  with pytest.raises(ValueError, match="at least one"):
    ArraySource({"a": np.zeros((0, 2))})


@pytest.mark.parametrize("kwargs,error,match", [
    (dict(batch_size=0), ValueError, "batch_size"),
    (dict(batch_size=2.0), TypeError, "batch_size"),
    (dict(seed=-1), ValueError, "seed"),
    (dict(seed=2**32), ValueError, "seed"),
    (dict(num_epochs=0), ValueError, "num_epochs"),
    (dict(num_threads=-1), ValueError, "num_threads"),
    (dict(transform=3), TypeError, "transform"),
    (dict(batch_size=100, num_epochs=1), ValueError, "batch_size"),
    (dict(batch_size=100, num_epochs=1, batch_indexing=False), ValueError, "batch_size"),
])
def test_make_pipeline_validation(kwargs, error, match):
  args = dict(batch_size=4, seed=0) | kwargs
  with pytest.raises(error, match=match):
    make_pipeline(source(), **args)


def test_make_pipeline_rejects_bad_sources():
  with pytest.raises(TypeError, match="get_batch"):
    make_pipeline(ListSource(5), batch_size=2, seed=0, batch_indexing=True)
  with pytest.raises(TypeError, match="source"):
    make_pipeline(3, batch_size=2, seed=0)
  with pytest.raises(ValueError, match="empty"):
    make_pipeline(ListSource(0), batch_size=2, seed=0)


class _CountingSource(ArraySource):
  """Records which indices were read (a process must read only its rows)."""

  def __init__(self, n):
    super().__init__({"id": np.arange(n, dtype=np.int32)})
    self.read = []

  def get_batch(self, indices):
    self.read.extend(int(i) for i in indices)
    return super().get_batch(indices)


@pytest.mark.parametrize("count", [2, 4])
@pytest.mark.parametrize("with_get_batch", [True, False])
def test_shards_split_each_global_batch_and_read_only_their_rows(count, with_get_batch):
  global_batches = list(itertools.islice(
      make_pipeline(source(), batch_size=8, seed=5, num_threads=0), 6))
  parts = []
  for index in range(count):
    src = _CountingSource(len(source())) if with_get_batch else ListSource(len(source()))
    ds = make_pipeline(src, batch_size=8, seed=5, shard=(index, count), num_threads=0,
                       prefetch_buffer_size=0)
    batches = list(itertools.islice(ds, 6))
    assert all(len(b["id"]) == 8 // count for b in batches)
    if with_get_batch:
      assert sorted(src.read) == sorted(np.concatenate([b["id"] for b in batches]).tolist())
    parts.append(batches)
  for k, full in enumerate(global_batches):
    joined = np.concatenate([np.asarray(p[k]["id"]).reshape(-1) for p in parts])
    np.testing.assert_array_equal(joined, np.asarray(full["id"]).reshape(-1))


@pytest.mark.parametrize("shard", [(2, 2), (-1, 2), (0, 3), "ab", (0, 0)])
def test_bad_shard_names_the_argument(shard):
  with pytest.raises(ValueError, match="shard"):
    make_pipeline(source(), batch_size=8, seed=0, shard=shard)
