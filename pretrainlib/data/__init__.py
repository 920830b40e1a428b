"""Input pipelines built on tf.data."""

from pretrainlib.data.image import image_dataset
from pretrainlib.data.text import text_dataset

__all__ = ["image_dataset", "text_dataset"]
