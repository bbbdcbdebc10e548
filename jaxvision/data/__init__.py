"""jaxvision.data: MNIST loading, grain pipelines and JAX augmentations."""

from jaxvision.data.mnist import (ENV_VAR, IMAGES_MAGIC, LABELS_MAGIC, MnistSource, load_mnist,
                                  read_idx)
from jaxvision.data.pipeline import ArraySource, make_pipeline
from jaxvision.data.transforms import (binarize, center_crop, color_jitter, gaussian_noise,
                                       iic_views, random_affine, random_crop_resize,
                                       random_horizontal_flip, random_resized_crop,
                                       random_rotation, random_zoom_with_boxes,
                                       rotate_or_crop_views)
from jaxvision.data.scenes import (CLASS_NAMES, SceneConfig, SceneSource, class_colours,
                                   generate_scene, generate_scenes)
from jaxvision.data.book import (BookDetectionSource, BookSegmentationSource, read_book_labels,
                                 read_book_masks, write_book_split)
from jaxvision.data.tfds import (PETS_MASK_CLASSES, VOC_CLASSES, oxford_pets_source,
                                 voc_source)  # imports tensorflow_datasets only when called
from jaxvision.data.datasets import (DATASETS, TASKS, Dataset, iterate_batches,
                                     load_dataset)

__all__ = [
    # mnist
    "ENV_VAR", "IMAGES_MAGIC", "LABELS_MAGIC", "MnistSource", "load_mnist", "read_idx",
    # pipeline
    "ArraySource", "make_pipeline",
    # transforms
    "center_crop", "random_crop_resize", "random_resized_crop", "random_rotation",
    "random_affine", "binarize", "gaussian_noise", "random_horizontal_flip", "color_jitter",
    "random_zoom_with_boxes", "iic_views", "rotate_or_crop_views",
    # book (the drinks data set of Atienza ch. 11-12)
    "read_book_labels", "BookDetectionSource", "read_book_masks", "BookSegmentationSource",
    "write_book_split",
    # scenes (detection / segmentation scenes of MNIST digits)
    "SceneConfig", "SceneSource", "generate_scene", "generate_scenes",
    "class_colours",  # re-exported from jaxvision.viz, where the scene pictures are drawn
    "CLASS_NAMES",
    # tfds
    "voc_source", "oxford_pets_source", "VOC_CLASSES", "PETS_MASK_CLASSES",
    # datasets (every detection/segmentation data set by name, for the CLIs)
    "Dataset", "load_dataset", "iterate_batches", "DATASETS", "TASKS",
]
