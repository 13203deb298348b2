"""Loading the real test-set annotations with GT masks, and drawing the negatives manifests.

Workloads:

1. VGG-SS: read the 5,158 annotations (shipped ``vggss.json.xz``), map the classes to broad
   categories, count the quirks and build all 5,158 GT masks (224 × 224, union of boxes).
   Baseline, measured in the same run: what the reference loaders do per sample (vssl_eval, LVS,
   EZ-VSL): for each entry, ``np.clip(np.array(bbox), 0, 1) * 224`` then ``astype(int)`` per box and a
   fresh ``224 × 224`` map filled box by box. Both paths are checked to give identical masks first.
2. IS3: the same for its 6,480 entries (shipped table).
3. Manifests: draw 10 seeds × 3 negative types for every sample (VGG-SS and IS3), with 0 and 2
   DataLoader workers (identical results are asserted), then serialise, hash, reload and validate.

Usage: python benchmarks/annotations.py [--repeat 3]
Prints the median wall time of each step and the ratio to the baseline.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
import warnings

import numpy as np

from vssl_helpers import __version__
from vssl_helpers.negatives import build_manifest, items_from_samples, loads_manifest
from vssl_helpers.testsets.is3 import load_is3
from vssl_helpers.testsets.vggss import load_vggss, read_vggss_annotations


def timed(fn, repeat: int) -> tuple[float, object]:
    """Median wall time of ``repeat`` calls of ``fn`` and the last result."""
    times, out = [], None
    for _ in range(repeat):
        t = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times), out


def reference_style_vggss() -> np.ndarray:
    """Per-sample loop as in the reference loaders (one map per entry, one slice per box)."""
    entries, _ = read_vggss_annotations()
    maps = []
    for e in entries:
        gt = np.zeros((224, 224))
        for b in e["bbox"]:
            x1, y1, x2, y2 = (np.clip(np.array(b), 0, 1) * 224).astype(int)
            gt[y1:y2, x1:x2] = 1
        maps.append(gt > 0)
    return np.stack(maps)


def main() -> None:
    """Run the three workloads and print their times."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    print(f"vssl_helpers {__version__}, numpy {np.__version__}, {platform.processor() or platform.machine()}, "
          f"{os.cpu_count()} CPUs; median of {args.repeat} runs")

    t_ref, ref = timed(reference_style_vggss, args.repeat)
    t_new, ds = timed(load_vggss, args.repeat)
    assert np.array_equal(ref, ds.gt_masks), "masks differ from the reference rule"
    print(f"VGG-SS: {len(ds):,} annotations -> {ds.gt_masks.shape} bool masks ({ds.gt_masks.nbytes / 2**20:.0f} MiB)")
    print(f"  reference-style per-sample loop : {t_ref:7.3f} s  (parse + masks only)")
    print(f"  load_vggss (parse, categories, quirks, vectorised masks): {t_new:7.3f} s")
    print(f"  ratio                           : {t_ref / t_new:7.1f}x")

    t_is3, is3 = timed(load_is3, args.repeat)
    print(f"IS3: {len(is3):,} entries, load_is3 (names, categories, quirks, masks): {t_is3:.3f} s")

    for name, samples in (("vggss", ds.samples), ("is3", is3.samples)):
        items = items_from_samples(samples)
        t0, m0 = timed(lambda: build_manifest(items, name=name), args.repeat)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            t2, m2 = timed(lambda: build_manifest(items, name=name, num_workers=2, batch_size=256), 1)
        assert m2.sha256 == m0.sha256
        t_io, back = timed(lambda: loads_manifest(m0.dumps()), args.repeat)
        assert back.sha256 == m0.sha256
        rows = len(items) * m0.n_seeds * 3
        print(f"manifest {name}: {rows:,} rows; draw {t0:.3f} s (0 workers), {t2:.3f} s (2 workers, incl. start-up); "
              f"serialise+parse+hash+validate {t_io:.3f} s; sha256 {m0.sha256[:16]}...")


if __name__ == "__main__":
    main()
