"""greenprof: per-step energy and carbon of deep-learning training."""
