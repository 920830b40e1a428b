"""Input pipelines built on tf.data."""

from pretrainlib.data.augmentation import (
    RandomResizedCrop,
    contrastive_augmentation,
    flip_and_shift,
)
from pretrainlib.data.files import TextFiles
from pretrainlib.data.image import image_dataset
from pretrainlib.data.image_folder import image_folder
from pretrainlib.data.image_preprocessor import ImagePreprocessor
from pretrainlib.data.prompts import prompt_dataset
from pretrainlib.data.text import text_dataset
from pretrainlib.data.tfds_source import from_tfds

__all__ = ["ImagePreprocessor", "RandomResizedCrop", "TextFiles", "contrastive_augmentation",
           "flip_and_shift", "from_tfds", "image_dataset", "image_folder", "prompt_dataset",
           "text_dataset"]
