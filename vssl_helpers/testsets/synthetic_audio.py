"""Classes and procedural sounds of the synthetic benchmark (:mod:`vssl_helpers.testsets.synthetic`).

There are 24 fine classes, three in each of the paper's 8 broad categories (:data:`BROAD_CATEGORIES`).
Every category has one *sound family* (the way a sound is synthesized) and one *shape* (how its objects
look); every fine class has its own family parameters, hue and texture. The table is
:data:`SYNTHETIC_CLASSES` (name → :class:`SyntheticClass`, in a fixed order that defines class indices).

Families, one per category (every clip also gets pitch, tempo, gain and envelope jitter):

============================  ==================  ===============================================
category                      family              what distinguishes its classes
============================  ==================  ===============================================
music                         ``harmonic``        notes of a harmonic tone: partial weights,
                                                  attack/decay, vibrato, breath noise
human voice                   ``formant``         a sawtooth glottal source through vowel
                                                  formants: f0, syllable rate, pitch contour
vehicles                      ``engine``          a low buzz, amplitude-modulated: f0, AM rate
                                                  and depth, rev, rumble noise
devices/machines              ``beeps``           repeated tone bursts or sweeps: frequency,
                                                  sweep ratio, burst length and rate
animals                       ``calls``           frequency-modulated harmonic calls: contour
                                                  (trill / arch / fall), call length and rate
weapons                       ``impulses``        decaying noise bursts: rate, regularity,
                                                  decay time, band
nature ambient                ``noise``           band-limited noise with slow modulation: band,
                                                  modulation, droplets
others                        ``struck``          struck objects, damped inharmonic modes: mode
                                                  ratios, decay, strike rate, pitch set
============================  ==================  ===============================================

Every class has a characteristic frequency :attr:`SyntheticClass.freq` (an f0, a band centre, a
bell's nominal); every frequency of its sound scales with it. Two helpers build *harder* audio from
the same classes, for the training code's "realism knob":

* :func:`shaped_noise`: stationary noise with the class's long-term spectrum (no temporal structure).
* :func:`neighbour_sound`: a sound of *another* broad category whose characteristic frequency is the
  nearest to this class's (:func:`acoustic_neighbour`), by default re-pitched to match it exactly.

All functions are pure functions of their arguments and of the ``numpy.random.Generator`` they are
given: the same generator state gives byte-identical audio.
"""

from __future__ import annotations

import colorsys
import functools
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

import numpy as np
from scipy import signal

from .base import BROAD_CATEGORIES

__all__ = [
    "SyntheticClass",
    "SYNTHETIC_CLASSES",
    "CLASS_NAMES",
    "CATEGORY_FAMILY",
    "CATEGORY_SHAPE",
    "TEXTURES",
    "class_token",
    "class_from_token",
    "synthesize_sound",
    "shaped_noise",
    "acoustic_neighbour",
    "neighbour_sound",
]

CATEGORY_FAMILY: Mapping[str, str] = MappingProxyType(
    {
        "music": "harmonic",
        "human voice": "formant",
        "vehicles": "engine",
        "devices/machines": "beeps",
        "animals": "calls",
        "weapons": "impulses",
        "nature ambient": "noise",
        "others": "struck",
    }
)
"""Sound family of each broad category."""

CATEGORY_SHAPE: Mapping[str, str] = MappingProxyType(
    {
        "music": "circle",
        "human voice": "square",
        "vehicles": "triangle",
        "devices/machines": "hexagon",
        "animals": "star",
        "weapons": "cross",
        "nature ambient": "ring",
        "others": "crescent",
    }
)
"""Object shape of each broad category (see :mod:`~vssl_helpers.testsets.synthetic_visual`)."""

TEXTURES: tuple[str, ...] = ("solid", "stripes", "dots")
"""Textures; the k-th class of a category gets ``TEXTURES[k]``."""


@dataclass(frozen=True)
class SyntheticClass:
    """One fine class of the synthetic benchmark.

    Attributes:
        name: class name, e.g. ``"cello"``.
        category: its broad category (one of :data:`BROAD_CATEGORIES`).
        index: position in :data:`SYNTHETIC_CLASSES` (the ``class_index`` of
            :meth:`SyntheticSet.arrays <vssl_helpers.testsets.synthetic.SyntheticSet.arrays>`).
        family: sound family (:data:`CATEGORY_FAMILY` of the category).
        freq: characteristic frequency in Hz; all frequencies of the sound scale with it.
        params: family-specific parameters (read-only mapping).
        shape: object shape (:data:`CATEGORY_SHAPE` of the category).
        hue: nominal hue in [0, 1) of its objects (HSV); instances jitter it by ±0.012.
        texture: one of :data:`TEXTURES`.
        vggsound_class: a real VGGSound class of the same broad category (verbatim), written as the
            ``class`` of :func:`~vssl_helpers.testsets.synthetic.write_vggss_layout`.
        is3_label: an IS3 file-name label of the same broad category (unique among the classes),
            used in the stems of :func:`~vssl_helpers.testsets.synthetic.write_is3_layout`.
    """

    name: str
    category: str
    index: int
    family: str
    freq: float
    params: Mapping[str, Any] = field(hash=False, compare=False)
    shape: str = ""
    hue: float = 0.0
    texture: str = "solid"
    vggsound_class: str = ""
    is3_label: str = ""

    @property
    def rgb(self) -> tuple[float, float, float]:
        """Nominal colour (RGB in [0, 1]) at the middle of the instance saturation/value ranges."""
        return colorsys.hsv_to_rgb(self.hue, 0.78, 0.8)


# (name, category, characteristic frequency in Hz, VGGSound class, IS3 file-name label, family
# parameters). Rates are in Hz, times in s; parameters that are frequencies are ratios of ``freq`` so
# that re-pitching scales everything. The VGGSound class and IS3 label are real ones of the same broad
# category under the project's category map (vssl_helpers/data/categories/), so that sets written in
# the official layouts load with the real-data loaders; "basketballbounce" is the one label IS3 lacks
# (IS3 names only two "others" sources: popcorn and skateboard).
_SPECS: tuple[tuple[str, str, float, str, str, dict[str, Any]], ...] = (
    ("cello", "music", 196.0, "playing cello", "cello",
     dict(partials=tuple(1.0 / k**0.8 for k in range(1, 15)), attack=0.1, decay=0.0, vibrato=(5.5, 0.007),
          note_rate=1.6, breath=0.0)),
    ("flute", "music", 880.0, "playing flute", "flute",
     dict(partials=(1.0, 0.35, 0.12, 0.05), attack=0.05, decay=0.0, vibrato=(5.0, 0.004),
          note_rate=1.5, breath=0.12)),
    ("piano", "music", 262.0, "playing piano", "piano",
     dict(partials=(1.0, 0.7, 0.45, 0.3, 0.2, 0.12, 0.08), attack=0.003, decay=0.35, vibrato=(0.0, 0.0),
          note_rate=3.0, breath=0.0)),
    ("man speaking", "human voice", 120.0, "male speech, man speaking", "male",
     dict(syllable_rate=4.0, gap=0.35, contour="slope", glide=0.15, vibrato=(0.0, 0.0))),
    ("woman singing", "human voice", 300.0, "female singing", "female",
     dict(syllable_rate=1.2, gap=0.05, contour="flat", glide=0.0, vibrato=(5.5, 0.02))),
    ("baby crying", "human voice", 450.0, "baby crying", "baby",
     dict(syllable_rate=0.9, gap=0.3, contour="arch", glide=0.25, vibrato=(8.0, 0.03))),
    ("car engine", "vehicles", 45.0, "car engine idling", "car",
     dict(am_rate=6.0, am_depth=0.3, cutoff=20.0, noise=0.2, rev=0.05)),
    ("motorcycle", "vehicles", 80.0, "driving motorcycle", "motorcycle",
     dict(am_rate=11.0, am_depth=0.5, cutoff=25.0, noise=0.3, rev=0.3)),
    ("helicopter", "vehicles", 28.0, "helicopter", "helicopter",
     dict(am_rate=17.0, am_depth=0.95, cutoff=15.0, noise=0.5, rev=0.0)),
    ("alarm clock", "devices/machines", 2000.0, "alarm clock ringing", "alarmclock",
     dict(sweep=1.0, burst=0.07, rate=8.0, n_harm=3, noise=0.0)),
    ("electric grinder", "devices/machines", 750.0, "electric grinder grinding", "electricgrinder",
     dict(sweep=1.3, burst=1.4, rate=0.6, n_harm=5, noise=0.3)),
    ("telephone", "devices/machines", 1100.0, "telephone bell ringing", "telephone",
     dict(sweep=1.0, burst=0.025, rate=20.0, n_harm=4, noise=0.0)),
    ("bird chirping", "animals", 3500.0, "bird chirping, tweeting", "bird",
     dict(contour="trill", fm_rate=30.0, depth=0.18, call=0.18, rate=3.5, n_harm=1, noise=0.0)),
    ("cat meowing", "animals", 650.0, "cat meowing", "cat",
     dict(contour="arch", fm_rate=0.0, depth=0.35, call=0.7, rate=0.9, n_harm=6, noise=0.03)),
    ("dog barking", "animals", 500.0, "dog barking", "dog",
     dict(contour="fall", fm_rate=0.0, depth=0.3, call=0.14, rate=2.5, n_harm=8, noise=0.35)),
    ("gunshot", "weapons", 1200.0, "firing muskets", "firingmusket",
     dict(rate=1.0, regular=False, decay=0.09, band=(0.25, 2.5))),
    ("machine gun", "weapons", 1600.0, "machine gun shooting", "machinegun",
     dict(rate=11.0, regular=True, decay=0.03, band=(0.25, 2.5))),
    ("fireworks", "weapons", 250.0, "fireworks banging", "fireworks",
     dict(rate=1.2, regular=False, decay=0.3, band=(0.2, 4.0))),
    ("sea waves", "nature ambient", 400.0, "sea waves", "ocean",
     dict(band=(0.25, 6.0), am_rate=0.15, am_depth=0.8, drops=0.0)),
    ("waterfall", "nature ambient", 1500.0, "waterfall burbling", "waterfall",
     dict(band=(0.2, 4.5), am_rate=0.0, am_depth=0.0, drops=40.0)),
    ("stream", "nature ambient", 1200.0, "stream burbling", "stream",
     dict(band=(0.33, 2.3), am_rate=6.0, am_depth=0.4, drops=0.0)),
    ("popcorn popping", "others", 1500.0, "popping popcorn", "popcorn",
     dict(ratios=(1.0, 1.7, 2.9), decay=0.03, rate=6.0, regular=False, pitches=(0.8, 1.0, 1.25))),
    ("skateboard", "others", 400.0, "skateboarding", "skateboard",
     dict(ratios=(1.0, 2.3, 3.9), decay=0.1, rate=1.5, regular=False, pitches=(1.0, 1.15))),
    ("basketball bounce", "others", 180.0, "basketball bounce", "basketballbounce",
     dict(ratios=(1.0, 1.59, 2.14), decay=0.12, rate=2.2, regular=True, pitches=(1.0,))),
)


def _build_table() -> dict[str, SyntheticClass]:
    table: dict[str, SyntheticClass] = {}
    per_category: dict[str, int] = {}
    for name, category, freq, vggsound, is3, params in _SPECS:
        c = BROAD_CATEGORIES.index(category)
        k = per_category.get(category, 0)
        per_category[category] = k + 1
        table[name] = SyntheticClass(
            name=name,
            category=category,
            index=len(table),
            family=CATEGORY_FAMILY[category],
            freq=freq,
            params=MappingProxyType(dict(params)),
            shape=CATEGORY_SHAPE[category],
            # Classes of one category are a third of the hue circle apart, and the 8 categories are
            # offset by 1/24, so all 24 nominal hues are distinct and 1/24 apart.
            hue=((k * 8 + c) / 24.0) % 1.0,
            texture=TEXTURES[k % len(TEXTURES)],
            vggsound_class=vggsound,
            is3_label=is3,
        )
    return table


SYNTHETIC_CLASSES: Mapping[str, SyntheticClass] = MappingProxyType(_build_table())
"""The 24 fine classes, name → :class:`SyntheticClass`, in class-index order (3 per category)."""

CLASS_NAMES: tuple[str, ...] = tuple(SYNTHETIC_CLASSES)
"""Class names in class-index order."""


def class_token(name: str) -> str:
    """The IS3 file-name label of a synthetic class (one token: lower case, no spaces or underscores).

    For example ``"man speaking"`` → ``"male"``, ``"alarm clock"`` → ``"alarmclock"``; see
    :attr:`SyntheticClass.is3_label`.
    """
    return _lookup(name).is3_label


_BY_TOKEN = {c.is3_label: n for n, c in SYNTHETIC_CLASSES.items()}
assert len(_BY_TOKEN) == len(CLASS_NAMES)
assert all(t and t == t.lower() and " " not in t and "_" not in t for t in _BY_TOKEN)


def class_from_token(token: str) -> str:
    """Inverse of :func:`class_token` (``KeyError`` for tokens of no synthetic class)."""
    return _BY_TOKEN[token]


# --------------------------------------------------------------------------------------------------
# Building blocks


def _smooth_random(rng: np.random.Generator, t: np.ndarray, rate: float, n: int = 2) -> np.ndarray:
    """A slow random wiggle in [-1, 1]: mean of ``n`` sinusoids near ``rate`` Hz with random phases."""
    out = np.zeros_like(t)
    for _ in range(n):
        f = rate * rng.uniform(0.6, 1.4)
        out += np.sin(2 * np.pi * f * t + rng.uniform(0, 2 * np.pi))
    return out / n


def _event_times(rng: np.random.Generator, rate: float, duration: float, regular: bool) -> np.ndarray:
    """Onset times of repeated events (bursts, calls, strikes), at least one inside the clip.

    The first onset falls within the first period (or the first half of the clip) so that short clips
    always contain an event; irregular events get ±50 % interval jitter, regular ones ±5 %.
    """
    period = 1.0 / rate
    t = rng.uniform(0.0, min(period, 0.5 * duration))
    times = []
    spread = 0.05 if regular else 0.5
    while t < duration:
        times.append(t)
        t += period * rng.uniform(1 - spread, 1 + spread)
    return np.asarray(times)


def _segments(times: np.ndarray, lengths: np.ndarray, n: int, sr: int) -> list[tuple[int, int]]:
    """Sample ranges ``[start, stop)`` of events, clipped to the clip."""
    out = []
    for t0, length in zip(times, lengths):
        a = int(t0 * sr)
        b = min(n, a + max(2, int(length * sr)))
        if a < b:
            out.append((a, b))
    return out


def _harmonics(phase: np.ndarray, weights: np.ndarray | tuple, fmax: float, sr: int) -> np.ndarray:
    """Sum of ``w_k sin(k·phase)``, dropping partials that would exceed 0.45·sr (no aliasing)."""
    out = np.zeros_like(phase)
    for k, w in enumerate(weights, start=1):
        if k * fmax >= 0.45 * sr:
            break
        out += w * np.sin(k * phase)
    return out


def _phase(freq: np.ndarray, sr: int) -> np.ndarray:
    """Running phase (radians) of an instantaneous frequency track."""
    return (2 * np.pi / sr) * np.cumsum(freq)


def _sawtooth(phase: np.ndarray) -> np.ndarray:
    # A naive sawtooth aliases, but at these f0 the aliases are weak and the cost is one modulo
    # instead of dozens of sines; the formant/low-pass filters that follow remove most of them.
    return 2.0 * np.mod(phase / (2 * np.pi), 1.0) - 1.0


def _band_filter(x: np.ndarray, lo: float, hi: float, sr: int) -> np.ndarray:
    """Zero-phase band-pass in the frequency domain with raised-cosine skirts of one octave.

    FFT filtering of a whole 2 s clip costs two real FFTs, much less than an IIR filter of a
    comparable steepness, and has no start-up transient.
    """
    n = x.shape[0]
    f = np.fft.rfftfreq(n, 1.0 / sr)
    lo = max(lo, 1.0)
    hi = min(hi, 0.49 * sr)
    with np.errstate(divide="ignore"):
        lf = np.log2(np.maximum(f, 1e-3))
    g = np.ones_like(f)
    # one-octave cosine skirts below lo and above hi
    below = np.clip(lf - (math.log2(lo) - 1.0), 0.0, 1.0)
    above = np.clip((math.log2(hi) + 1.0) - lf, 0.0, 1.0)
    g *= 0.5 - 0.5 * np.cos(np.pi * below)
    g *= 0.5 - 0.5 * np.cos(np.pi * above)
    g[f > 0.49 * sr] = 0.0
    return np.fft.irfft(np.fft.rfft(x) * g, n)


def _one_pole_lowpass(x: np.ndarray, cutoff: float, sr: int) -> np.ndarray:
    a = math.exp(-2 * math.pi * min(cutoff, 0.45 * sr) / sr)
    return signal.lfilter([1 - a], [1, -a], x)


def _resonator(x: np.ndarray, freq: float, bandwidth: float, sr: int) -> np.ndarray:
    """Two-pole resonator (a formant) at ``freq`` Hz with the given -3 dB bandwidth."""
    r = math.exp(-math.pi * bandwidth / sr)
    w = 2 * math.pi * min(freq, 0.45 * sr) / sr
    return signal.lfilter([1 - r], [1, -2 * r * math.cos(w), r * r], x)


def _ramp_gate(n: int, segs: list[tuple[int, int]], ramp: int, shape: str = "trapezoid") -> np.ndarray:
    """0/1 gate over the clip, 1 inside the segments, with short ramps (or a sine bump) per segment."""
    g = np.zeros(n)
    for a, b in segs:
        m = b - a
        if shape == "sine":
            env = np.sin(np.pi * (np.arange(m) + 0.5) / m) ** 0.6
        else:
            r = max(1, min(ramp, m // 2))
            env = np.ones(m)
            env[:r] = np.linspace(0, 1, r, endpoint=False)
            env[m - r:] = np.linspace(1, 0, r)
        # overlapping events (irregular onsets) merge instead of cutting each other off with a click
        g[a:b] = np.maximum(g[a:b], env)
    return g


# --------------------------------------------------------------------------------------------------
# Families. Each takes (params, f, rate_jitter, rng, n, sr) and returns an un-normalized float64
# signal of n samples; f is the jittered (and possibly re-pitched) characteristic frequency.

_SCALE = np.array([0, 2, 4, 5, 7, 9, 12])  # major-scale semitones for melodies


def _family_harmonic(p, f, rj, rng, n, sr):
    t = np.arange(n) / sr
    note = 1.0 / (p["note_rate"] * rj)
    starts = _event_times(rng, 1.0 / note, n / sr, regular=True)
    starts[0] = 0.0  # a melody, not bursts: the first note starts the clip
    semis = rng.choice(_SCALE, size=len(starts)) - 5
    idx = np.searchsorted(starts, t, side="right") - 1
    fr = f * 2.0 ** (semis[idx] / 12.0)
    vr, vd = p["vibrato"]
    if vd > 0:
        fr = fr * (1 + vd * np.sin(2 * np.pi * vr * t + rng.uniform(0, 2 * np.pi)))
    x = _harmonics(_phase(fr, sr), p["partials"], float(fr.max()), sr)
    tau = t - starts[idx]  # time since the current note started
    env = np.minimum(tau / p["attack"], 1.0)
    if p["decay"] > 0:
        env = env * np.exp(-tau / p["decay"])
    # a 20 ms release before each next note avoids clicks at note boundaries
    ends = np.append(starts[1:], np.inf)[idx]
    env = env * np.clip((ends - t) / 0.02, 0.0, 1.0)
    x = x * env
    if p["breath"] > 0:
        x = x + p["breath"] * _band_filter(rng.standard_normal(n), f, 4 * f, sr) * env
    return x


_VOWELS = np.array(
    [  # F1, F2, F3 (Hz) of /a/, /e/, /i/, /o/, /u/ (adult averages)
        (730, 1090, 2440),
        (530, 1840, 2480),
        (270, 2290, 3010),
        (570, 840, 2410),
        (300, 870, 2240),
    ],
    dtype=float,
)


def _family_formant(p, f, rj, rng, n, sr):
    t = np.arange(n) / sr
    times, lengths = [], []
    cur = rng.uniform(0.0, 0.15)
    while cur < n / sr:
        length = rng.uniform(0.6, 1.4) / (p["syllable_rate"] * rj)
        times.append(cur)
        lengths.append(length * (1 - p["gap"]))
        cur += length
    segs = _segments(np.array(times), np.array(lengths), n, sr)
    # f0 contour, one shape per syllable
    fr = np.full(n, f)
    for a, b in segs:
        u = np.linspace(0.0, 1.0, b - a)
        if p["contour"] == "slope":
            fr[a:b] = f * (1 + p["glide"] * rng.uniform(-1, 1) * (2 * u - 1))
        elif p["contour"] == "arch":
            fr[a:b] = f * (1 + p["glide"] * np.sin(np.pi * u))
        else:  # "flat": each syllable is a sung note on a scale
            fr[a:b] = f * 2.0 ** (rng.choice(_SCALE[:5]) / 12.0)
    vr, vd = p["vibrato"]
    if vd > 0:
        fr = fr * (1 + vd * np.sin(2 * np.pi * vr * t + rng.uniform(0, 2 * np.pi)))
    src = _sawtooth(_phase(fr, sr))
    x = np.zeros(n)
    # a child's vocal tract is shorter: raise formants with f0 for the high-pitched classes
    tract = 1.0 + 0.25 * (f > 350)
    for a, b in segs:
        formants = _VOWELS[rng.integers(len(_VOWELS))] * tract * rng.uniform(0.95, 1.05)
        seg = src[a:b]
        y = np.zeros(b - a)
        for j, fo in enumerate(formants):
            y += (1.0, 0.6, 0.35)[j] * _resonator(seg, fo, 60 + 0.06 * fo, sr)
        x[a:b] = y
    return x * _ramp_gate(n, segs, int(0.03 * sr))


def _family_engine(p, f, rj, rng, n, sr):
    t = np.arange(n) / sr
    fr = f * (1 + p["rev"] * 0.5 * (_smooth_random(rng, t, 0.5) + 1))
    buzz = _one_pole_lowpass(_sawtooth(_phase(fr, sr)), p["cutoff"] * f, sr)
    rumble = _one_pole_lowpass(rng.standard_normal(n), 8 * f, sr)
    rumble *= np.std(buzz) / max(np.std(rumble), 1e-12)
    d = p["am_depth"]
    # sharper AM lobes for deep modulation: a helicopter "chops", a car engine only throbs
    lobe = (0.5 + 0.5 * np.sin(2 * np.pi * p["am_rate"] * rj * t + rng.uniform(0, 2 * np.pi))) ** (1 + 3 * d)
    am = 1 - d + d * lobe
    return (buzz + p["noise"] * rumble) * am


def _family_beeps(p, f, rj, rng, n, sr):
    times = _event_times(rng, p["rate"] * rj, n / sr, regular=True)
    lengths = np.full(len(times), p["burst"] * rng.uniform(0.9, 1.1))
    segs = _segments(times, lengths, n, sr)
    fr = np.full(n, f)
    for a, b in segs:
        fr[a:b] = f * np.geomspace(1.0, p["sweep"], b - a)
    # odd harmonics: a square-ish electronic tone
    ph = _phase(fr, sr)
    x = np.zeros(n)
    for k in range(p["n_harm"]):
        m = 2 * k + 1
        if m * f * p["sweep"] >= 0.45 * sr:
            break
        x += np.sin(m * ph) / m
    if p["noise"] > 0:
        x += p["noise"] * _band_filter(rng.standard_normal(n), 0.5 * f, 4 * f, sr)
    return x * _ramp_gate(n, segs, int(0.005 * sr))


def _family_calls(p, f, rj, rng, n, sr):
    times = _event_times(rng, p["rate"] * rj, n / sr, regular=False)
    lengths = p["call"] * rng.uniform(0.8, 1.2, size=len(times))
    segs = _segments(times, lengths, n, sr)
    fr = np.full(n, f)
    fm_phase = rng.uniform(0, 2 * np.pi)
    for a, b in segs:
        u = np.linspace(0.0, 1.0, b - a)
        if p["contour"] == "trill":
            c = np.sin(2 * np.pi * p["fm_rate"] * rj * u * (b - a) / sr + fm_phase)
        elif p["contour"] == "arch":
            c = np.sin(np.pi * u)
        else:  # "fall"
            c = 1 - u
        fr[a:b] = f * (1 + p["depth"] * c)
    weights = 1.0 / np.arange(1, p["n_harm"] + 1) ** 1.2
    x = _harmonics(_phase(fr, sr), weights, float(fr.max()), sr)
    if p["noise"] > 0:
        x = x + p["noise"] * _band_filter(rng.standard_normal(n), 0.5 * f, 6 * f, sr)
    return x * _ramp_gate(n, segs, 0, shape="sine")


def _family_impulses(p, f, rj, rng, n, sr):
    times = _event_times(rng, p["rate"] * rj, n / sr, regular=p["regular"])
    train = np.zeros(n)
    idx = (times * sr).astype(int)
    train[idx[idx < n]] = rng.uniform(0.6, 1.0, size=int((idx < n).sum()))
    decay = p["decay"] * rng.uniform(0.8, 1.2)
    m = min(n, int(5 * decay * sr))
    kernel = rng.standard_normal(m) * np.exp(-np.arange(m) / (decay * sr))
    x = signal.fftconvolve(train, kernel)[:n]
    lo, hi = p["band"]
    return _band_filter(x, lo * f, hi * f, sr)


def _family_noise(p, f, rj, rng, n, sr):
    t = np.arange(n) / sr
    x = rng.standard_normal(n)
    if p["drops"] > 0:
        # droplets/splashes: sparse short clicks on top of the hiss
        k = rng.poisson(p["drops"] * n / sr)
        train = np.zeros(n)
        train[rng.integers(0, n, size=k)] = rng.uniform(3.0, 12.0, size=k)
        m = int(0.004 * sr)
        x += signal.fftconvolve(train, rng.standard_normal(m) * np.exp(-np.arange(m) / (0.001 * sr)))[:n]
    lo, hi = p["band"]
    x = _band_filter(x, lo * f, hi * f, sr)
    if p["am_depth"] > 0:
        d = p["am_depth"]
        x *= 1 - d + d * 0.5 * (_smooth_random(rng, t, p["am_rate"] * rj, n=3) + 1)
    return x


def _family_struck(p, f, rj, rng, n, sr):
    times = _event_times(rng, p["rate"] * rj, n / sr, regular=p["regular"])
    decay = p["decay"] * rng.uniform(0.8, 1.2)
    ratios = np.asarray(p["ratios"])
    amps = 1.0 / (1.0 + 0.5 * np.arange(len(ratios)))
    x = np.zeros(n)
    for t0 in times:
        a = int(t0 * sr)
        b = min(n, a + int(4 * decay * sr))
        tau = np.arange(b - a) / sr
        f_strike = f * rng.choice(p["pitches"])
        strength = rng.uniform(0.5, 1.0)
        for j, (r, amp) in enumerate(zip(ratios, amps)):
            fp = f_strike * r
            if fp >= 0.45 * sr:
                continue
            # higher modes die away faster, as in real struck bars, plates and shells
            x[a:b] += strength * amp * np.exp(-tau * (1 + 0.6 * j) / decay) * np.sin(
                2 * np.pi * fp * tau + rng.uniform(0, 2 * np.pi)
            )
    return x


_FAMILIES = {
    "harmonic": _family_harmonic,
    "formant": _family_formant,
    "engine": _family_engine,
    "beeps": _family_beeps,
    "calls": _family_calls,
    "impulses": _family_impulses,
    "noise": _family_noise,
    "struck": _family_struck,
}


def _lookup(class_name: str) -> SyntheticClass:
    try:
        return SYNTHETIC_CLASSES[class_name]
    except KeyError:
        raise KeyError(f"unknown synthetic class {class_name!r}; known: {', '.join(CLASS_NAMES)}") from None


def _render(
    cls: SyntheticClass, rng: np.random.Generator, duration: float, sr: int, freq: float | None = None
) -> np.ndarray:
    """Synthesize one clip of ``cls``; ``freq`` overrides its characteristic frequency (re-pitching)."""
    n = int(round(duration * sr))
    if n <= 0:
        return np.zeros(0, np.float32)
    f = (cls.freq if freq is None else freq) * rng.uniform(0.94, 1.06)  # ±6 % pitch jitter
    rj = rng.uniform(0.85, 1.15)  # tempo jitter of every rate in the family
    x = _FAMILIES[cls.family](cls.params, f, rj, rng, n, sr)
    # A random overall envelope (fade in/out and a slow level drift), a random gain, faint hiss.
    t = np.arange(n) / sr
    fade_in, fade_out = rng.uniform(0.005, 0.2, size=2)
    env = np.clip(t / fade_in, 0, 1) * np.clip((n / sr - t) / fade_out, 0, 1)
    env *= 1 + 0.2 * _smooth_random(rng, t, 0.4)
    x = x * env
    peak = float(np.max(np.abs(x)))
    x = x * (rng.uniform(0.3, 0.9) / peak if peak > 0 else 0.0)
    x += 0.002 * rng.standard_normal(n)
    return np.clip(x, -1.0, 1.0).astype(np.float32)


def synthesize_sound(
    class_name: str, rng: np.random.Generator, duration: float = 2.0, sample_rate: int = 16000
) -> np.ndarray:
    """Synthesize one clip of a synthetic class.

    Args:
        class_name: a key of :data:`SYNTHETIC_CLASSES`.
        rng: the source of all randomness (pitch ±6 %, tempo ±15 %, notes/syllables/event times,
            envelope, gain 0.3–0.9 peak, hiss); the same generator state gives the same bytes.
        duration: length in seconds.
        sample_rate: in Hz; partials and bands above 0.45·``sample_rate`` are dropped.

    Returns:
        Mono float32 waveform in [-1, 1] of ``round(duration * sample_rate)`` samples.
    """
    return _render(_lookup(class_name), rng, duration, sample_rate)


@functools.lru_cache(maxsize=128)
def _class_spectrum(class_name: str, sample_rate: int) -> tuple[np.ndarray, np.ndarray, float]:
    """Average magnitude spectrum (frequencies, magnitudes) and mean RMS of a class's sounds.

    Estimated from 8 clips of 2 s made with a fixed generator, so the result depends on the class and
    sample rate only (and is cached: a few milliseconds per class the first time).
    """
    cls = _lookup(class_name)
    rng = np.random.default_rng(np.random.SeedSequence([0x5EC7, cls.index, sample_rate]))
    mags, rms = [], []
    for _ in range(8):
        x = _render(cls, rng, 2.0, sample_rate).astype(np.float64)
        freqs, _, z = signal.stft(x, fs=sample_rate, nperseg=1024, noverlap=512, boundary=None)
        mags.append(np.abs(z).mean(axis=1))
        rms.append(float(np.sqrt(np.mean(x**2))))
    return freqs, np.mean(mags, axis=0), float(np.mean(rms))


def shaped_noise(
    class_name: str, rng: np.random.Generator, duration: float = 2.0, sample_rate: int = 16000
) -> np.ndarray:
    """Stationary noise whose spectrum follows the class's average magnitude spectrum.

    White Gaussian noise is filtered (in the frequency domain, so its phases stay random) by the
    class's long-term average magnitude spectrum (1024-point STFT, averaged over 8 reference clips),
    then scaled to the class's mean RMS and clipped to [-1, 1]. It has the class's timbre "on
    average" but none of its temporal structure (notes, syllables, bursts): a harder noise negative
    than white noise, which a model can reject from its spectrum alone.

    Args:
        class_name: a key of :data:`SYNTHETIC_CLASSES`.
        rng: source of the noise.
        duration: length in seconds.
        sample_rate: in Hz.

    Returns:
        Mono float32 waveform in [-1, 1].
    """
    freqs, mag, rms = _class_spectrum(class_name, sample_rate)
    n = int(round(duration * sample_rate))
    if n <= 0:
        return np.zeros(0, np.float32)
    spec = np.fft.rfft(rng.standard_normal(n))
    spec *= np.interp(np.fft.rfftfreq(n, 1.0 / sample_rate), freqs, mag)
    y = np.fft.irfft(spec, n)
    y *= rms / max(float(np.sqrt(np.mean(y**2))), 1e-12)
    return np.clip(y, -1.0, 1.0).astype(np.float32)


def _neighbour_table() -> dict[str, str]:
    out = {}
    for name, cls in SYNTHETIC_CLASSES.items():
        others = [c for c in SYNTHETIC_CLASSES.values() if c.category != cls.category]
        # nearest characteristic frequency on a log scale; ties go to the earlier class
        best = min(others, key=lambda c: (abs(math.log(c.freq / cls.freq)), c.index))
        out[name] = best.name
    return out


_NEIGHBOURS: Mapping[str, str] = MappingProxyType(_neighbour_table())


def acoustic_neighbour(class_name: str) -> str:
    """The class of *another* broad category whose characteristic frequency is nearest (log scale).

    For example ``baby crying`` (450 Hz) → ``dog barking`` (500 Hz), ``car engine`` (45 Hz) →
    ``man speaking`` (120 Hz), ``bird chirping`` (3.5 kHz) → ``alarm clock`` (2 kHz). Fixed for
    each class.
    """
    _lookup(class_name)
    return _NEIGHBOURS[class_name]


def neighbour_sound(
    class_name: str,
    rng: np.random.Generator,
    duration: float = 2.0,
    sample_rate: int = 16000,
    match_pitch: bool = True,
) -> tuple[np.ndarray, str]:
    """A sound of another broad category that shares acoustics with ``class_name``.

    The other class is :func:`acoustic_neighbour` (the nearest characteristic frequency among classes
    of other categories). With ``match_pitch`` (default) it is synthesized at *this* class's
    characteristic frequency, so both occupy the same pitch/frequency range and differ only in their
    family (temporal structure, timbre): an offscreen negative that is hard to reject from the
    spectrum alone. Without it, the neighbour is synthesized as usual.

    Returns:
        (mono float32 waveform in [-1, 1], name of the other class).
    """
    cls = _lookup(class_name)
    other = SYNTHETIC_CLASSES[_NEIGHBOURS[class_name]]
    freq = cls.freq if match_pitch else None
    return _render(other, rng, duration, sample_rate, freq=freq), other.name
