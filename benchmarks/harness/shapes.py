"""Class geometry for the harness cases: filled shapes, icon polygons and stroked letters.

All in unit coordinates (0..1, y down). No digits anywhere (digit data sets stay outside the harness).
"""

from __future__ import annotations

import numpy as np

from .render import ellipse


def _star(points=5, outer=0.42, inner=0.18):
    t = np.deg2rad(np.arange(2 * points) * 180.0 / points - 90.0)
    r = np.where(np.arange(2 * points) % 2 == 0, outer, inner)
    return np.stack([0.5 + r * np.cos(t), 0.5 + r * np.sin(t)], axis=1)


def _regular(n, r=0.38, phase=-90.0):
    return ellipse(0.5, 0.5, r, r, phase, phase + 360.0, n + 1)[:-1]


def _heart():
    t = np.linspace(0, 2 * np.pi, 64, endpoint=False)
    x = 16 * np.sin(t) ** 3
    y = 13 * np.cos(t) - 5 * np.cos(2 * t) - 2 * np.cos(3 * t) - np.cos(4 * t)
    return np.stack([0.5 + x / 40.0, 0.48 - y / 40.0], axis=1)


def _rect(x0, y0, x1, y1):
    return np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]], dtype=np.float64)


# Filled shapes: list of (polygon, 1 = ink / 0 = hole), drawn in order.
FILLED: dict[str, list] = {
    "disk": [(ellipse(0.5, 0.5, 0.36, 0.36), 1)],
    "square": [(_rect(0.2, 0.2, 0.8, 0.8), 1)],
    "triangle": [(np.array([[0.5, 0.14], [0.86, 0.82], [0.14, 0.82]]), 1)],
    "plus": [(_rect(0.4, 0.14, 0.6, 0.86), 1), (_rect(0.14, 0.4, 0.86, 0.6), 1)],
    "ring": [(ellipse(0.5, 0.5, 0.38, 0.38), 1), (ellipse(0.5, 0.5, 0.2, 0.2), 0)],
    "star": [(_star(), 1)],
    "diamond": [(np.array([[0.5, 0.1], [0.9, 0.5], [0.5, 0.9], [0.1, 0.5]]), 1)],
    "arrow": [
        (_rect(0.12, 0.4, 0.55, 0.6), 1),
        (np.array([[0.5, 0.18], [0.9, 0.5], [0.5, 0.82]]), 1),
    ],
    "crescent": [(ellipse(0.5, 0.5, 0.38, 0.38), 1), (ellipse(0.66, 0.42, 0.3, 0.3), 0)],
    "bars": [(_rect(0.16, 0.15, 0.36, 0.85), 1), (_rect(0.64, 0.15, 0.84, 0.85), 1)],
}

ICONS: dict[str, list] = {
    "hexagon": [(_regular(6), 1)],
    "halfdisk": [(ellipse(0.5, 0.62, 0.4, 0.4, 180.0, 360.0, 33), 1)],
    "lshape": [
        (
            np.array(
                [[0.2, 0.12], [0.42, 0.12], [0.42, 0.66], [0.82, 0.66], [0.82, 0.88], [0.2, 0.88]]
            ),
            1,
        )
    ],  # fmt: skip
    "tshape": [(_rect(0.12, 0.14, 0.88, 0.36), 1), (_rect(0.39, 0.3, 0.61, 0.88), 1)],
    "hourglass": [
        (
            np.array(
                [[0.18, 0.12], [0.82, 0.12], [0.5, 0.5], [0.82, 0.88], [0.18, 0.88], [0.5, 0.5]]
            ),
            1,
        )
    ],  # fmt: skip
    "chevron": [
        (
            np.array(
                [[0.12, 0.3], [0.5, 0.62], [0.88, 0.3], [0.88, 0.56], [0.5, 0.88], [0.12, 0.56]]
            ),
            1,
        )
    ],  # fmt: skip
    "arrowup": [
        (np.array([[0.5, 0.1], [0.86, 0.5], [0.14, 0.5]]), 1),
        (_rect(0.38, 0.45, 0.62, 0.9), 1),
    ],
    "trapezoid": [(np.array([[0.34, 0.22], [0.66, 0.22], [0.9, 0.78], [0.1, 0.78]]), 1)],
    "frame": [(_rect(0.14, 0.14, 0.86, 0.86), 1), (_rect(0.34, 0.34, 0.66, 0.66), 0)],
    "heart": [(_heart(), 1)],
}


def _s_curve():
    upper = ellipse(0.5, 0.32, 0.19, 0.17, -20.0, -270.0, 24)
    lower = ellipse(0.5, 0.66, 0.2, 0.18, -90.0, 160.0, 24)
    return [np.concatenate([upper, lower])]


def _u_curve():
    bottom = ellipse(0.5, 0.6, 0.25, 0.26, 180.0, 0.0, 20)
    return [np.concatenate([[(0.25, 0.14)], bottom, [(0.75, 0.14)]])]


# Letters as polylines (pen strokes), in confusable pairs (E/F, H/N, U/V, K/X, O/C) so that
# stroke style, not gross layout, decides how well a judge transfers.
LETTERS: dict[str, list[np.ndarray]] = {
    name: [np.asarray(s, dtype=np.float64) for s in strokes]
    for name, strokes in {
        "E": [[(0.74, 0.15), (0.27, 0.15), (0.27, 0.85), (0.74, 0.85)], [(0.27, 0.5), (0.64, 0.5)]],
        "F": [[(0.74, 0.15), (0.27, 0.15), (0.27, 0.86)], [(0.27, 0.5), (0.64, 0.5)]],
        "H": [
            [(0.25, 0.14), (0.25, 0.86)],
            [(0.75, 0.14), (0.75, 0.86)],
            [(0.25, 0.5), (0.75, 0.5)],
        ],
        "N": [[(0.25, 0.86), (0.25, 0.14), (0.75, 0.86), (0.75, 0.14)]],
        "U": _u_curve(),
        "V": [[(0.22, 0.14), (0.5, 0.86), (0.78, 0.14)]],
        "K": [
            [(0.28, 0.14), (0.28, 0.86)],
            [(0.76, 0.14), (0.28, 0.58)],
            [(0.43, 0.45), (0.77, 0.86)],
        ],
        "X": [[(0.22, 0.15), (0.78, 0.85)], [(0.78, 0.15), (0.22, 0.85)]],
        "O": [ellipse(0.5, 0.5, 0.3, 0.36, 0.0, 360.0, 33)],
        "C": [ellipse(0.52, 0.5, 0.32, 0.36, 40.0, 320.0, 28)],
    }.items()
}
