"""Colours people can read: the pocket-change palette under colour-vision deficiencies."""

from __future__ import annotations

import itertools

import numpy as np

from kantong.engine.compare.pockets import STATUS_COLORS

#: Machado, Oliveira & Fernandes (2009) simulation matrices, severity 1.0 (linear RGB).
CVD = {
    "normal": np.eye(3),
    "protan": np.array([[0.152286, 1.052583, -0.204868], [0.114503, 0.786281, 0.099216],
                        [-0.003882, -0.048116, 1.051998]]),
    "deutan": np.array([[0.367322, 0.860646, -0.227968], [0.280085, 0.672501, 0.047413],
                        [-0.011820, 0.042940, 0.968881]]),
    "tritan": np.array([[1.255528, -0.076749, -0.178779], [-0.078411, 0.930809, 0.147602],
                        [0.004733, 0.691367, 0.303900]]),
}


def _linear(hex_colour: str) -> np.ndarray:
    c = np.array([int(hex_colour[i:i + 2], 16) for i in (1, 3, 5)]) / 255
    return np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)


def _lab(rgb: np.ndarray) -> np.ndarray:
    m = np.array([[0.4124, 0.3576, 0.1805], [0.2126, 0.7152, 0.0722],
                  [0.0193, 0.1192, 0.9505]])
    t = m @ np.clip(rgb, 0, 1) / np.array([0.9505, 1.0, 1.089])
    f = np.where(t > 0.008856, np.cbrt(t), 7.787 * t + 16 / 116)
    return np.array([116 * f[1] - 16, 500 * (f[0] - f[1]), 200 * (f[1] - f[2])])


def _min_distance(palette: dict[str, str]) -> float:
    return min(float(np.linalg.norm(_lab(sim @ _linear(a)) - _lab(sim @ _linear(b))))
               for sim in CVD.values() for a, b in itertools.combinations(palette.values(), 2))


def test_change_palette_is_colour_blind_safe() -> None:
    assert _min_distance(STATUS_COLORS) >= 20.0
    # the former red/green palette: the reference that this test would catch
    former = {"persisting": "#e08214", "shrinking": "#1a9850", "growing": "#d73027",
              "new": "#762a83", "resolved": "#4575b4"}
    assert _min_distance(former) < 20.0
    # "resolved" sits on the blue cells of a decrease: it is not a blue
    r, g, b = (int(STATUS_COLORS["resolved"][i:i + 2], 16) for i in (1, 3, 5))
    assert not (b > r + 40 and b > g)
