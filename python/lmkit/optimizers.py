"""Keras' optimizer names for ``model.compile(optimizer=Adam(5e-5))``."""

from __future__ import annotations


class Adam:
    """Adam as lmkit trains with it (PyTorch's update rule). ``epsilon`` defaults to 1e-8, as
    PyTorch and ``lmkit finetune``, not Keras' 1e-7; ``weight_decay`` > 0 makes it AdamW."""

    def __init__(
        self,
        learning_rate: float = 0.001,
        beta_1: float = 0.9,
        beta_2: float = 0.999,
        epsilon: float = 1e-8,
        weight_decay: float = 0.0,
    ):
        for name, v in (("learning_rate", learning_rate), ("epsilon", epsilon)):
            if not v > 0:
                raise ValueError(f"{name} must be > 0, got {v}")
        for name, v in (("beta_1", beta_1), ("beta_2", beta_2)):
            if not 0 <= v < 1:
                raise ValueError(f"{name} must be in [0, 1), got {v}")
        if weight_decay < 0:
            raise ValueError(f"weight_decay must be >= 0, got {weight_decay}")
        self.learning_rate, self.beta_1, self.beta_2 = float(learning_rate), float(beta_1), float(beta_2)
        self.epsilon, self.weight_decay = float(epsilon), float(weight_decay)

    def config(self) -> dict:
        """The settings as lmkit's trainer reads them."""
        return {
            "lr": self.learning_rate,
            "beta1": self.beta_1,
            "beta2": self.beta_2,
            "eps": self.epsilon,
            "weight_decay": self.weight_decay,
        }

    def __repr__(self) -> str:
        return f"Adam(learning_rate={self.learning_rate}, epsilon={self.epsilon}, weight_decay={self.weight_decay})"


class AdamW(Adam):
    """Adam with decoupled weight decay (default 0.004, as Keras)."""

    def __init__(self, learning_rate: float = 0.001, weight_decay: float = 0.004, **kw: float):
        super().__init__(learning_rate=learning_rate, weight_decay=weight_decay, **kw)
