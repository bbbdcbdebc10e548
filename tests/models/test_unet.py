"""Tests of U-Net (``jaxvision.models.unet``): sizes not divisible by 2^depth included."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxvision import models
from jaxvision.models import unet
from tests.models._segmentation import shapes


@pytest.mark.parametrize("up", ["transpose", "resize"])
@pytest.mark.parametrize("size", [(32, 40), (33, 41), (17, 23), (2, 2), (3, 7)])
def test_logits_have_the_image_size(size, up):
  out, _ = shapes(models.UNetTiny(num_classes=5, up=up), size)
  assert out.shape == (2, *size, 5) and out.dtype == jnp.float32


@pytest.mark.parametrize("size", [(120, 160), (121, 163)])
def test_small_variant_shapes(size):
  out, _ = shapes(models.UNetSmall(), size, batch=1)
  assert out.shape == (1, *size, 11)


def test_rejects_images_smaller_than_the_pools():
  with pytest.raises(ValueError, match=">= 8"):
    shapes(models.UNetSmall(), (7, 40))


@pytest.mark.parametrize("kwargs", [{"widths": (4,)}, {"up": "nearest"}])
def test_rejects_bad_configurations(kwargs):
  with pytest.raises(ValueError):
    shapes(models.UNet(**{"widths": (4, 8), **kwargs}), (16, 16))


def test_paper_parameter_count():
  """The paper's widths 64 ... 1024 (with BatchNorm, same-padded): about 31 M parameters."""
  _, variables = shapes(models.UNet(num_classes=2), (32, 32), batch=1)
  assert 30_500_000 < models.count_params(variables["params"]) < 31_500_000


def test_match_spatial_pads_and_crops_symmetrically():
  x = jnp.arange(12.0).reshape(1, 3, 4, 1)
  padded = unet.match_spatial(x, (5, 5))[0, ..., 0]
  np.testing.assert_array_equal(padded[1:4, 0:4], x[0, ..., 0])
  assert float(padded.sum()) == float(x.sum()) and padded.shape == (5, 5)
  cropped = unet.match_spatial(x, (1, 2))[0, ..., 0]
  np.testing.assert_array_equal(cropped, x[0, 1:2, 1:3, 0])
  assert unet.match_spatial(x, (3, 4)) is x
