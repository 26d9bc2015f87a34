"""Fine-tuning: run options, training features, run planning, the Trainer wrapper and its
callbacks, estimates, run reports, and models built from scratch.

Importing this package is cheap: transformers and torch are imported only when a run starts.
"""

from __future__ import annotations

from dialogsum.training.options import TrainingOptions
from dialogsum.training.trainer import TrainResult

__all__ = ["TrainResult", "TrainingOptions"]
