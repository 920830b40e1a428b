"""Text generation with causal backbones: a batched, cached, seeded Generator and its
samplers."""

from pretrainlib.generation.generator import Generator
from pretrainlib.generation.samplers import sampler

__all__ = ["Generator", "sampler"]
