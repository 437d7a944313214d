"""A trained refiner: restored from a run or loaded from an export file, as a callable."""

from .refiner import Refiner, export_refiner, load_refiner

__all__ = ["Refiner", "export_refiner", "load_refiner"]
