"""Compile the metric kernels (:mod:`vssl_helpers._run_kernels`) once per install, and say so.

Numba compiles a kernel on its first call and caches the machine code on disk (``cache=True``),
so a fresh install would pay for every kernel (about a minute on 2 cores, more on a busy machine)
inside its first metric call, silently. Instead:

* ``scripts/bootstrap.sh`` (``make book``/``make test``) calls
  :func:`vssl_helpers.metrics.ensure_kernels` at install, which compiles them all with a message;
* otherwise the first metric call of a process compiles them all once (the same function), after a
  one-line message on stderr that says so and how long it takes, and another with the time it took.

What "all" means is the metrics' business: :mod:`vssl_helpers.metrics` passes its warm-up (every
public metric called once with the argument types it hands the kernels), so this module imports the
kernels only, never the metrics (the import graph stays acyclic).

Compiled means: a stamp file, beside Numba's own cache of the kernels, names the kernel source (its
sha256, as Numba keys its cache by the source content), the Numba version and the CPU. Once the
stamp is there, a process loads each kernel from Numba's cache on first use, as usual.
"""

from __future__ import annotations

import hashlib
import sys
import time
from pathlib import Path
from typing import IO, Callable

__all__ = ["compile_kernels", "ensure_compiled", "stamp_path"]

EXPECTED = "about 1 minute on 2 free cores, up to 3 on a busy machine"
"""What the message promises (measured: 64 s of CPU, 163 s of wall time with 4 jobs on the 2 cores; see
benchmarks/RESULTS.md)."""

_busy = False
_ready = False  # this process found or wrote the stamp: no file check per metric call


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


def compile_kernels(warm_up: Callable[[], None]) -> float:
    """Run ``warm_up`` (calls that reach every kernel with the argument types of real use), so that
    Numba compiles (or loads) each; return the seconds."""
    t0 = time.perf_counter()
    warm_up()
    return time.perf_counter() - t0


def ensure_compiled(warm_up: Callable[[], None], stream: IO[str] | None = None) -> None:
    """Compile the kernels through ``warm_up`` with a message unless the stamp says they are (a
    no-op in that case, and inside a compilation already under way)."""
    global _busy, _ready
    if _busy or _ready:
        return
    stamp = stamp_path()
    if stamp.is_file():
        _ready = True
        return
    out = sys.stderr if stream is None else stream
    _busy = True
    try:
        print(f"vssl: compiling the metric kernels (Numba, once per install: {EXPECTED}; "
              "`make env` does it at install) ...", file=out, flush=True)
        seconds = compile_kernels(warm_up)
    finally:
        _busy = False
    _ready = True
    print(f"vssl: metric kernels compiled in {seconds:.0f} s (cached in {stamp.parent})", file=out, flush=True)
    try:
        from .atomic import atomic_write

        atomic_write(stamp, lambda tmp: tmp.write_text(f"compiled in {seconds:.1f} s\n", encoding="utf-8"))
    except OSError:  # a read-only install: Numba could not cache either; nothing to remember
        pass
