"""Layer 0 — what every other layer may use: errors, atomic files and JSON, registries, runtime
(threads, devices, seeds). Nothing here imports Paddle at module level."""

__version__ = "0.1.0"
