"""Training by maximum likelihood: setup, the step and the loop, validation, logging, checkpoints, DDP."""

from waveglow.train.errors import TrainingError
from waveglow.train.loop import TrainResult, train

__all__ = ["TrainResult", "TrainingError", "train"]
