"""Old import path of ``train_method``: it lives in ``irnbench.training`` now."""

from irnbench.training.loop import NonFiniteLoss, TrainResult, train_method

__all__ = ["train_method", "TrainResult", "NonFiniteLoss"]
