"""Procedural scenes of the synthetic benchmark (:mod:`vssl_helpers.testsets.synthetic`).

A scene is a muted, textured background (blended oriented gratings plus pixel noise) with a few
salient objects on it. An object's *shape* is set by its broad category (circle, square, triangle,
hexagon, 5-point star, cross, ring, crescent; :data:`~.synthetic_audio.CATEGORY_SHAPE`), its *hue*
and *texture* (solid, stripes, dots) by its fine class; every instance varies in size (radius 13–26 %
of the side), position, rotation, hue (±0.012), saturation and value. Objects are painted in random
order, so they may occlude one another; the label map records which object owns each pixel, and the
ground-truth mask of an object is its *visible* pixels.

Whether an object sounds is not visible: sounding objects and silent distractors are drawn from the
same distributions, so visual saliency alone cannot tell them apart.
"""

from __future__ import annotations

import colorsys
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .synthetic_audio import SYNTHETIC_CLASSES

__all__ = ["SceneObject", "shape_mask", "render_scene", "RADIUS_RANGE"]

RADIUS_RANGE: tuple[float, float] = (0.13, 0.26)
"""Object circumradius as a fraction of the image side."""

# Minimum visible fraction (of the in-frame area) of an object after occlusion. Sounding objects must
# stay clearly localizable; a distractor only has to stay recognisable.
_MIN_VISIBLE_SOUNDING = 0.5
_MIN_VISIBLE_SILENT = 0.35
_MIN_VISIBLE_PIXELS = 100


@dataclass(frozen=True)
class SceneObject:
    """One rendered object (all coordinates in pixels of the rendered image)."""

    class_name: str
    cx: float
    cy: float
    radius: float
    angle: float
    rgb: tuple[float, float, float]
    """Base colour in [0, 1] before texture shading and pixel noise."""
    visible_pixels: int


def _polygon_inside(rho: np.ndarray, theta: np.ndarray, n: int, r_outer: float, r_inner: float) -> np.ndarray:
    """Inside test for a regular n-gon (``r_inner = r_outer cos(pi/n)``) or an n-point star.

    By symmetry it suffices to fold every point into the wedge between a tip (angle 0, radius
    ``r_outer``) and the next inner vertex (angle pi/n, radius ``r_inner``); there the shape is the
    triangle (origin, tip, inner vertex), so a point is inside iff it lies on the origin's side of
    the tip→inner-vertex edge.
    """
    half = math.pi / n
    t = np.mod(theta, 2 * half)
    t = np.minimum(t, 2 * half - t)
    px, py = rho * np.cos(t), rho * np.sin(t)
    bx, by = r_inner * math.cos(half), r_inner * math.sin(half)
    return (bx - r_outer) * py - by * (px - r_outer) >= 0


def shape_mask(shape: str, u: np.ndarray, v: np.ndarray, radius: float) -> np.ndarray:
    """Boolean mask of a shape of circumradius ``radius`` centred at the origin of (u, v).

    Args:
        shape: one of circle, square, triangle, hexagon, star, cross, ring, crescent.
        u, v: object-local (rotated) coordinates of pixel centres, same shape.
        radius: circumradius in pixels.
    """
    r = radius
    rho = np.hypot(u, v)
    if shape == "circle":
        return rho <= r
    if shape == "ring":
        return (rho <= r) & (rho >= 0.55 * r)
    if shape == "cross":
        w = 0.32 * r
        au, av = np.abs(u), np.abs(v)
        return ((au <= w) & (av <= r)) | ((av <= w) & (au <= r))
    if shape == "crescent":
        return (rho <= r) & (np.hypot(u - 0.45 * r, v) > 0.8 * r)
    theta = np.arctan2(v, u)
    if shape == "star":
        return _polygon_inside(rho, theta, 5, r, 0.45 * r)
    n = {"triangle": 3, "square": 4, "hexagon": 6}.get(shape)
    if n is None:
        raise ValueError(f"unknown shape {shape!r}")
    # squares and triangles look small at the same circumradius; enlarge them a little
    r = r * {3: 1.15, 4: 1.05, 6: 1.0}[n]
    return _polygon_inside(rho, theta, n, r, r * math.cos(math.pi / n))


def _background(rng: np.random.Generator, size: int) -> np.ndarray:
    """Muted two-colour blend driven by 3 random oriented gratings (float32 H×W×3 in [0, 1])."""
    colours = np.array(
        [colorsys.hsv_to_rgb(rng.uniform(), rng.uniform(0.05, 0.3), rng.uniform(0.3, 0.7)) for _ in range(2)],
        dtype=np.float32,
    )
    x = np.arange(size, dtype=np.float32)
    mix = np.zeros((size, size), np.float32)
    weights = rng.dirichlet(np.ones(3))
    for w in weights:
        theta = rng.uniform(0, np.pi)
        k = 2 * np.pi * rng.uniform(2.0, 14.0) / size  # 2–14 cycles per image
        kx, ky, phi = k * math.cos(theta), k * math.sin(theta), rng.uniform(0, 2 * np.pi)
        # cos(kx·x + ky·y + phi) as a sum of two outer products: O(H + W) trigonometry, not O(H·W)
        cx, sx = np.cos(kx * x + phi), np.sin(kx * x + phi)
        cy, sy = np.cos(ky * x), np.sin(ky * x)
        mix += w * (np.outer(cy, cx) - np.outer(sy, sx))
    mix = 0.5 + 0.5 * mix
    return colours[0] + mix[:, :, None] * (colours[1] - colours[0])


def _place(
    rng: np.random.Generator, n: int, size: int, shrink: float
) -> tuple[np.ndarray, np.ndarray] | None:
    """Random centres and radii with little overlap (rejection sampling), or None if it failed."""
    lo, hi = RADIUS_RANGE
    radii = rng.uniform(lo, hi, size=n) * size * shrink
    centres = np.zeros((n, 2))
    for j in range(n):
        for _ in range(30):
            # up to 40 % of the radius may leave the frame, as objects in real frames do
            c = rng.uniform(0.6 * radii[j], size - 0.6 * radii[j], size=2)
            d = np.hypot(*(centres[:j] - c).T)
            if np.all(d >= 0.75 * (radii[:j] + radii[j])):
                centres[j] = c
                break
        else:
            return None
    return centres, radii


def render_scene(
    rng: np.random.Generator, classes: Sequence[str], n_sounding: int, size: int = 224
) -> tuple[np.ndarray, np.ndarray, list[SceneObject]]:
    """Render one scene.

    Args:
        rng: the only source of randomness.
        classes: class of each object; the first ``n_sounding`` are the sounding ones (they get the
            stricter visibility requirement), the rest silent distractors.
        n_sounding: number of sounding objects.
        size: side of the square image in pixels.

    Returns:
        ``(image, labels, objects)``: the ``size × size × 3`` uint8 image, an int8 label map
        (``-1`` background, ``j`` = pixel shows ``classes[j]``) and the rendered objects in the order
        of ``classes``. Every object keeps at least half (sounding) or 35 % (silent) of its in-frame
        area visible and at least 100 pixels.
    """
    k = len(classes)
    info = [SYNTHETIC_CLASSES[c] for c in classes]
    for attempt in range(400):
        # Crowded scenes (4 objects) rarely fail; shrink the objects a little if they keep failing.
        placed = _place(rng, k, size, shrink=0.9 ** (attempt // 50))
        if placed is None:
            continue
        centres, radii = placed
        angles = rng.uniform(0, 2 * np.pi, size=k)
        order = rng.permutation(k)
        labels = np.full((size, size), -1, np.int8)
        crops = []
        areas = np.zeros(k, int)
        for j in range(k):
            (cx, cy), r, a = centres[j], radii[j], angles[j]
            x0, x1 = max(0, int(cx - r - 1)), min(size, int(math.ceil(cx + r + 1)))
            y0, y1 = max(0, int(cy - r - 1)), min(size, int(math.ceil(cy + r + 1)))
            dx = (np.arange(x0, x1) + 0.5 - cx)[None, :]
            dy = (np.arange(y0, y1) + 0.5 - cy)[:, None]
            ca, sa = math.cos(a), math.sin(a)
            u, v = dx * ca + dy * sa, dy * ca - dx * sa
            m = shape_mask(info[j].shape, u, v, r)
            crops.append((y0, y1, x0, x1, m, u, v))
            areas[j] = int(m.sum())
        for j in order:  # later objects occlude earlier ones
            y0, y1, x0, x1, m, _, _ = crops[j]
            labels[y0:y1, x0:x1][m] = j
        visible = np.bincount(labels.ravel().astype(np.int64) + 1, minlength=k + 1)[1:]
        need = np.where(np.arange(k) < n_sounding, _MIN_VISIBLE_SOUNDING, _MIN_VISIBLE_SILENT)
        if np.all(visible >= np.maximum(need * areas, _MIN_VISIBLE_PIXELS)):
            break
    else:  # pragma: no cover - needs ~400 unlucky placements in a row
        raise RuntimeError("could not place the objects of a synthetic scene")

    img = _background(rng, size)
    objects = []
    for j in order:
        y0, y1, x0, x1, m, u, v = crops[j]
        c = info[j]
        hue = (c.hue + rng.uniform(-0.012, 0.012)) % 1.0
        rgb = colorsys.hsv_to_rgb(hue, rng.uniform(0.62, 0.95), rng.uniform(0.65, 0.95))
        r = radii[j]
        if c.texture == "stripes":
            period = r * rng.uniform(0.3, 0.45)
            shade = np.where(np.mod(u, period) < 0.5 * period, 1.0, 0.62)
        elif c.texture == "dots":
            step = r * rng.uniform(0.35, 0.5)
            du = np.mod(u, step) - 0.5 * step
            dv = np.mod(v, step) - 0.5 * step
            shade = np.where(np.hypot(du, dv) < 0.28 * step, 0.5, 1.0)
        else:  # solid with a soft light gradient
            shade = 1.0 - 0.2 * (v + r) / (2 * r)
        shade = np.broadcast_to(shade, m.shape)
        patch = img[y0:y1, x0:x1]
        patch[m] = shade[m][:, None].astype(np.float32) * np.asarray(rgb, np.float32)
        objects.append((j, rgb))
    img += rng.standard_normal(img.shape, dtype=np.float32) * np.float32(0.025)
    image = np.clip(img * 255.0 + 0.5, 0, 255).astype(np.uint8)

    rgb_of = dict(objects)
    out = [
        SceneObject(
            class_name=classes[j],
            cx=float(centres[j, 0]),
            cy=float(centres[j, 1]),
            radius=float(radii[j]),
            angle=float(angles[j]),
            rgb=tuple(float(x) for x in rgb_of[j]),
            visible_pixels=int(visible[j]),
        )
        for j in range(k)
    ]
    return image, labels, out
