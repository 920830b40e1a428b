"""What a task part declares: the loss and metrics `compile` uses by default.

Objectives (for a Pretrainer) and heads (for a FineTuner) answer the same three
questions, so both models share one task base (`pl.training.TrainingCore`) that
asks them. The names carry `default_` because heads are Keras layers, whose
`metrics` and `losses` already mean what a layer tracks.
"""

from __future__ import annotations


class DeclaresLoss:
    """Mixin: `default_loss()`, `default_metrics()` and `default_weighted_metrics()`,
    used by `compile(loss="auto", metrics="auto", weighted_metrics="auto")`.

    Examples:
        >>> from pretrainlib.protocol import DeclaresLoss
        >>> class MeanSquared(DeclaresLoss):
        ...     def default_loss(self):
        ...         return "mse"
        >>> MeanSquared().default_loss(), MeanSquared().default_metrics()
        ('mse', [])
    """

    def default_loss(self):
        """The default loss (a Keras loss object or name)."""
        raise NotImplementedError(f"{type(self).__name__} must implement `default_loss`.")

    def default_metrics(self) -> list:
        """Default metrics, computed without sample weights."""
        return []

    def default_weighted_metrics(self) -> list:
        """Default metrics that use the sample weights (e.g. masked positions)."""
        return []
