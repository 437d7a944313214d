"""Pixels to the model's input and back (see the channel rules in the package docstring)."""

from __future__ import annotations

import numpy as np

from ..errors import OutputError
from ..io.pixels import colour_channels, convert_channels, quantise, to_unit_float


def model_input(pixels: np.ndarray, channels: int) -> np.ndarray:
    """Decoded HxWxC uint8/uint16 -> float32 HxWx`channels` in [0, 1], as training converts."""
    return convert_channels(colour_channels(to_unit_float(pixels)), channels)


def restore_pixels(refined: np.ndarray, original: np.ndarray) -> np.ndarray:
    """Refined float HxWxCm in [0, 1] + the decoded original -> an array like the original.

    The result has the original's channels (colour converted back: gray from an RGB model is
    the BT.601 luma; an RGB image from a gray model gets the change in luma added to R, G and
    B), its alpha channel unchanged, and its dtype, quantised with rounding.
    """
    colour = colour_channels(to_unit_float(original))
    refined = np.asarray(refined, np.float32)
    have, got = colour.shape[-1], refined.shape[-1]
    if got == have:
        out = refined
    elif have == 1 and got == 3:
        out = convert_channels(refined, 1)
    elif have == 3 and got == 1:
        luma = convert_channels(colour, 1)
        out = colour + (refined - luma)
    else:
        raise OutputError(f"cannot map {got} refined channels back to a {have}-channel image")
    out = quantise(np.clip(out, 0.0, 1.0), 16 if original.dtype == np.uint16 else 8)
    if original.shape[-1] in (2, 4):
        out = np.concatenate([out, original[..., -1:]], axis=-1)
    return out
