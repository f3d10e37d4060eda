"""Training: the trainer every model goes through, the loss registry, and metrics."""
