"""Learning-rate schedules applied by a Keras callback, so the optimizer the Trainer compiles is unchanged.

`warmup_cosine`: the learning rate rises linearly from 0 to the configured rate over `warmup_steps`
batches, then falls along half a cosine to `floor` × that rate at `total_steps`, and stays there.
"""

import math

import tf_keras as keras


def warmup_cosine(step: int, peak: float, warmup_steps: int, total_steps: int, floor: float = 0.0) -> float:
    """The learning rate at batch `step` (counting from 0)."""
    if warmup_steps > 0 and step < warmup_steps:
        return peak * (step + 1) / warmup_steps
    span = max(total_steps - warmup_steps, 1)
    progress = min(max(step - warmup_steps, 0) / span, 1.0)
    return peak * (floor + (1.0 - floor) * 0.5 * (1.0 + math.cos(math.pi * progress)))


class WarmupCosine(keras.callbacks.Callback):
    """Sets the optimizer's learning rate before every training batch by `warmup_cosine`."""

    def __init__(self, peak: float, warmup_steps: int, total_steps: int, floor: float = 0.0):
        super().__init__()
        self.peak = float(peak)
        self.warmup_steps = int(warmup_steps)
        self.total_steps = max(int(total_steps), 1)
        self.floor = float(floor)
        self._step = 0

    def on_train_batch_begin(self, batch, logs=None):
        rate = warmup_cosine(self._step, self.peak, self.warmup_steps, self.total_steps, self.floor)
        self.model.optimizer.learning_rate.assign(rate)
        self._step += 1
