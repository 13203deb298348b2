"""Speed of the embedded synthetic benchmark (and, later, of training the demo models on it).

Measures, on one thread:

1. generation of samples (image + GT mask + 2 s of audio) at 224 px, for ``sources=1`` and ``2``,
   split into the scene (image + masks) and the audio;
2. ``SyntheticSet.arrays(image_size=112)``: building the stacked arrays and writing the ``.npz``
   cache (to a temporary directory, so no cache is reused), then reading it back;
3. training of each demo model: seconds per step at a fixed step count (all cores), the projected
   time of a default run, and the measured time of the cached default runs when present.

Usage: python benchmarks/synthetic.py [--n 200] [--arrays-n 400] [--train-steps 40]
"""

from __future__ import annotations

import os

# one core: pin BLAS/OpenMP pools before numpy/scipy are imported (the FFTs are single-threaded anyway)
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import platform  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable  # noqa: E402

import numpy as np  # noqa: E402

from vssl_helpers import __version__  # noqa: E402
from vssl_helpers.testsets.synthetic import (  # noqa: E402
    CLASS_NAMES,
    GENERATOR_VERSION,
    SyntheticConfig,
    SyntheticSet,
    generate_audio,
    generate_scene,
)


def rate(n: int, fn: Callable[[], object]) -> tuple[float, float]:
    """(items per second, seconds) of one call of ``fn`` that processes ``n`` items."""
    t0 = time.perf_counter()
    fn()
    dt = time.perf_counter() - t0
    return n / dt, dt


def bench_generation(n_images: int) -> None:
    print(f"\n[1] generation at 224 px, {n_images} images per row (samples = images x sources)")
    for sources in (1, 2):
        cfg = SyntheticConfig(split="test", n_images=n_images, sources=sources, seed=123)
        ds = SyntheticSet(cfg)

        def all_samples() -> None:
            for s in ds:
                pass

        def scenes() -> None:
            for i in range(n_images):
                generate_scene(cfg, i)

        def audio() -> None:  # every class in turn
            for i in range(n_images):
                for src in range(sources):
                    generate_audio(cfg, i, src, CLASS_NAMES[(i * sources + src) % len(CLASS_NAMES)])

        r, dt = rate(len(ds), all_samples)
        rs, _ = rate(n_images, scenes)
        ra, _ = rate(n_images * sources, audio)
        print(
            f"  sources={sources}: {r:8.1f} samples/s ({dt:5.2f} s)   "
            f"scenes only {rs:7.1f} images/s   audio only {ra:7.1f} clips/s"
        )


def bench_arrays(n_images: int, image_size: int = 112) -> None:
    print(f"\n[2] arrays(image_size={image_size}), {n_images} images, sources=1 (fresh cache)")
    cfg = SyntheticConfig(split="train", n_images=n_images, sources=1, seed=123)
    with tempfile.TemporaryDirectory() as tmp:
        r, dt = rate(n_images, lambda: SyntheticSet(cfg).arrays(image_size, cache_dir=tmp, progress=False))
        size = sum(f.stat().st_size for f in os.scandir(tmp)) / 2**20
        print(f"  build + write: {r:8.1f} samples/s ({dt:5.2f} s, cache file {size:.1f} MiB)")
        r, dt = rate(n_images, lambda: SyntheticSet(cfg).arrays(image_size, cache_dir=tmp, progress=False))
        print(f"  cached read  : {r:8.0f} samples/s ({dt:5.3f} s)")


def bench_training(steps: int) -> None:
    """Seconds per step of each objective (fixed step count, so contention shows as time, not as a
    different model), projected to a default run; plus the cached default runs' measured time."""
    import torch

    from vssl_helpers.models.demo import TRAINED_DEMOS
    from vssl_helpers.models.training import OBJECTIVES, TrainConfig, train, training_record

    torch.set_num_threads(os.cpu_count() or 1)  # training uses every core (section 1-2 pinned BLAS to 1)
    default_steps = TrainConfig().steps
    print(f"\n[3] demo-model training ({torch.get_num_threads()} threads, {steps} steps on 512 train images, batch 64)")
    for name in TRAINED_DEMOS:
        cfg = TrainConfig(objective=OBJECTIVES[name], steps=steps, warmup_steps=steps // 3, n_train_images=512)
        result = train(cfg, progress=False)
        per_step = result.seconds / steps
        rec = training_record(name)
        cached = f"cached default run: {rec['seconds']:.0f} s" if rec else "no cached default run"
        print(f"  {name:14s}: {per_step:6.3f} s/step -> {per_step * default_steps:5.0f} s for {default_steps} steps ({cached})")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=200, help="images per generation row")
    ap.add_argument("--arrays-n", type=int, default=400, help="images for the arrays() row")
    ap.add_argument("--train-steps", type=int, default=40, help="steps per objective in the training row")
    args = ap.parse_args()
    print(
        f"vssl_helpers {__version__}, synthetic generator v{GENERATOR_VERSION}, numpy {np.__version__}, "
        f"{platform.processor() or platform.machine()}, 1 thread, load average "
        f"{', '.join(f'{x:.1f}' for x in os.getloadavg())}"
    )

    # ---- section 1: generation speed -------------------------------------------------------
    bench_generation(args.n)

    # ---- section 2: stacked arrays + cache ---------------------------------------------------
    bench_arrays(args.arrays_n)

    # ---- section 3: demo-model training ---------------------------------------------------------
    bench_training(args.train_steps)

if __name__ == "__main__":
    main()
