"""Compile the metric kernels (:mod:`vssl_helpers._run_kernels`) once per install, and say so.

Numba compiles a kernel on its first call and caches the machine code on disk (``cache=True``),
so a fresh install would pay for every kernel (about a minute on 2 cores, more on a busy machine)
inside its first metric call, silently. Instead:

* ``scripts/bootstrap.sh`` (``make book``/``make test``) runs ``python -m vssl_helpers.kernel_cache``
  at install, which compiles them all with a message;
* otherwise the first process that uses a kernel compiles them all once, after a one-line message
  on stderr that says so and how long it takes, and another with the time it took.

Compiled means: a stamp file, beside Numba's own cache of the kernels, names the kernel source (its
sha256, as Numba keys its cache by the source content), the Numba version and the CPU. Once the
stamp is there, a process loads each kernel from Numba's cache on first use, as usual.
"""

from __future__ import annotations

import hashlib
import sys
import time
from pathlib import Path
from typing import IO

__all__ = ["compile_kernels", "ensure_compiled", "stamp_path"]

EXPECTED = "about 1 minute on 2 free cores, up to 3 on a busy machine"
"""What the message promises (measured: 64 s of CPU, 163 s of wall time with 4 jobs on the 2 cores; see
benchmarks/RESULTS.md)."""

_busy = False


def stamp_path() -> Path:
    """The stamp that says the kernels of this source, Numba version and CPU are compiled."""
    import numba
    from llvmlite import binding

    from . import _run_kernels

    source = Path(_run_kernels.__file__).read_bytes()
    key = hashlib.sha256(source + f"|{numba.__version__}|{binding.get_host_cpu_name()}".encode()).hexdigest()[:16]
    try:  # Numba's own cache folder of the kernels (``__pycache__`` beside them, or its user cache)
        folder = Path(_run_kernels.active_counts._cache._cache_path)
    except AttributeError:  # another Numba layout: the companion's cache
        from .cache import cache_root

        folder = cache_root() / "numba"
    return folder / f"vssl-kernels-{key}.stamp"


def compile_kernels() -> float:
    """Call every kernel once with the argument types the metrics use (maps float32, thresholds
    float64, GT raw and prepared), so that Numba compiles (or loads) each; return the seconds."""
    import torch

    from . import metrics as M

    t0 = time.perf_counter()
    gen = torch.Generator().manual_seed(0)
    maps = torch.rand(2, 7, 7, generator=gen)
    other = torch.rand(2, 7, 7, generator=gen)
    gt = torch.zeros(2, M.GT_SIZE, M.GT_SIZE, dtype=torch.bool)
    gt[:, 50:150, 60:160] = True
    gt[1, 20:40, 10:200] = True  # a row form with two runs in some rows
    prepared = M.prepare_gt(gt)
    for g in (gt, prepared):
        M.ciou(maps, g, 0.5)
        M.ciou_adaptive(maps, g)
    M.pia(maps, 0.5)
    M.map_iou(maps, other, 0.5)
    return time.perf_counter() - t0


def ensure_compiled(stream: IO[str] | None = None) -> None:
    """Compile the kernels with a message unless the stamp says they are (a no-op in that case,
    and inside a compilation already under way)."""
    global _busy
    if _busy:
        return
    stamp = stamp_path()
    if stamp.is_file():
        return
    out = sys.stderr if stream is None else stream
    _busy = True
    try:
        print(f"vssl: compiling the metric kernels (Numba, once per install: {EXPECTED}; "
              "`make env` does it at install) ...", file=out, flush=True)
        seconds = compile_kernels()
    finally:
        _busy = False
    print(f"vssl: metric kernels compiled in {seconds:.0f} s (cached in {stamp.parent})", file=out, flush=True)
    try:
        from .atomic import atomic_write

        atomic_write(stamp, lambda tmp: tmp.write_text(f"compiled in {seconds:.1f} s\n", encoding="utf-8"))
    except OSError:  # a read-only install: Numba could not cache either; nothing to remember
        pass


if __name__ == "__main__":
    # scripts/bootstrap.sh: the first import of the kernels compiles them all (with its message),
    # or finds them compiled (instant)
    t0 = time.perf_counter()
    from vssl_helpers import _run_kernels  # noqa: F401

    print(f"vssl: metric kernels ready ({time.perf_counter() - t0:.1f} s)")
