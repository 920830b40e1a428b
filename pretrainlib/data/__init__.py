"""Input pipelines built on tf.data."""

from pretrainlib.data.image import image_dataset
from pretrainlib.data.text import text_dataset
from pretrainlib.data.tfds_source import from_tfds

__all__ = ["from_tfds", "image_dataset", "text_dataset"]
