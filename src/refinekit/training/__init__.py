"""Training stability, health, validation and run-folder pages (issue 13), used by train.py."""
