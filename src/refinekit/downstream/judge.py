"""Judging candidates against the raw synthetic set: the same training images (a class-balanced
subset of the synthetic training set), the same labelled real test images, the same CNN seeds,
so only the candidate's pixels differ. Raw synthetic (the identity) is always a candidate."""

from __future__ import annotations

import numpy as np

from .score import Downstream, better_than, score_training_set, subset


class CandidateJudge:
    def __init__(
        self,
        train_labels: np.ndarray,
        test_images: np.ndarray,
        test_labels: np.ndarray,
        classes: int,
        seed: int,
        *,
        seeds: tuple[int, ...] | None = None,
        epochs: int | None = None,
        max_train: int | None = None,
    ):
        """train_labels: int (N,) of the whole synthetic training set; `train_index` picks the
        images every candidate is scored with. Test images float NHWC in [0, 1]."""
        from . import score

        # the module's values at call time (tests shrink them)
        seeds = score.SEEDS if seeds is None else seeds
        epochs = score.EPOCHS if epochs is None else epochs
        max_train = score.MAX_TRAIN if max_train is None else max_train
        self.train_index = subset(np.asarray(train_labels), max_train, seed)
        self.train_labels = np.asarray(train_labels)[self.train_index]
        self.test_images, self.test_labels = test_images, np.asarray(test_labels)
        self.classes, self.seeds, self.epochs = classes, seeds, epochs
        self.raw: Downstream | None = None

    def score(self, images: np.ndarray) -> Downstream:
        """images: the candidate's version of the train_index images, float NHWC in [0, 1]."""
        return score_training_set(
            images,
            self.train_labels,
            self.test_images,
            self.test_labels,
            classes=self.classes,
            seeds=self.seeds,
            epochs=self.epochs,
        )

    def score_raw(self, raw_images: np.ndarray) -> Downstream:
        """The raw synthetic images' score, computed once."""
        if self.raw is None:
            self.raw = self.score(raw_images)
        return self.raw

    def record(self, images: np.ndarray, raw_images: np.ndarray) -> dict:
        """A scores.jsonl entry: the candidate's score, the raw set's, and their paired
        difference with its interval (its low end above 0: better beyond noise)."""
        raw = self.score_raw(raw_images)
        scored = self.score(images)
        difference, low, high = better_than(scored, raw)
        return {
            **scored.to_dict(),
            "raw_synthetic": raw.to_dict(),
            "vs_raw": {
                "difference": round(difference, 4),
                "interval": [round(low, 4), round(high, 4)],
            },
        }
