"""Training: the loop (`loop.train`), the jitted steps, losses, augmentation, the history
buffer, checkpoints, validation, best-checkpoint selection, health and the run page
(docs/training.md); `labels/` holds the class-label pieces."""
