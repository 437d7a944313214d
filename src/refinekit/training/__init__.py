"""Training stability, health, validation and run-folder pages (docs/training.md), used by train.py."""
