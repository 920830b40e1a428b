"""Input pipelines built on tf.data."""

from pretrainlib.data.text import text_dataset

__all__ = ["text_dataset"]
