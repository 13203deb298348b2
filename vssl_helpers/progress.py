"""The one home of the progress-bar policy: every tqdm bar of the package is made by :func:`bar`.

Three modes, decided per bar from the process-wide setting and the stream the bar writes to:

* **off**: ``--no-progress`` (:func:`set_enabled`) or ``VSSL_PROGRESS=0`` in the environment, which
  child processes (the notebook kernels of a book build) inherit; no bar anywhere.
* **terminal**: stderr is a tty (or a notebook front end): tqdm's usual live bar.
* **log**: stderr is a file or a pipe (CI logs, ``make book > log``). A live bar there writes a
  line for every refresh, thousands per loop; in log mode a bar writes a line when it starts, about
  every tenth of its total (:data:`LOG_LINES` lines per loop at most, plus the final one) and no more
  often than every :data:`LOG_MIN_INTERVAL_S` seconds, each line ending in a newline.

``VSSL_PROGRESS=1`` forces bars on; ``VSSL_PROGRESS=log`` forces log mode even on a terminal.
"""

from __future__ import annotations

import contextlib
import math
import os
import sys
from collections.abc import Iterable, Iterator
from typing import IO, Any

__all__ = ["LOG_LINES", "LOG_MIN_INTERVAL_S", "bar", "enabled", "mode", "set_enabled", "switched", "in_notebook"]

ENV = "VSSL_PROGRESS"
LOG_LINES = 10
"""At most this many intermediate lines per loop in log mode (the total is split in tenths)."""
LOG_MIN_INTERVAL_S = 10.0
"""And no more often than this (a loop of a few seconds prints its first and last line only)."""


def set_enabled(on: bool | None) -> None:
    """Turn every bar of this process and of the processes it starts off (False), force them on
    (True) or back to the automatic choice (None), through ``$VSSL_PROGRESS``."""
    if on is None:
        os.environ.pop(ENV, None)
    else:
        os.environ[ENV] = "1" if on else "0"


@contextlib.contextmanager
def switched(on: bool | None) -> Iterator[None]:
    """:func:`set_enabled` for the duration of a ``with`` block (a command run in-process, e.g. by a
    test, leaves the setting as it found it); ``None`` changes nothing."""
    before = os.environ.get(ENV)
    if on is not None:
        set_enabled(on)
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(ENV, None)
        else:
            os.environ[ENV] = before


def enabled() -> bool:
    """False when bars are switched off for this process (``--no-progress``, ``VSSL_PROGRESS=0``)."""
    return os.environ.get(ENV, "").strip().lower() not in ("0", "false", "no", "off")


def in_notebook() -> bool:
    """True inside a Jupyter kernel (a notebook, or the book's papermill runs)."""
    try:
        from IPython import get_ipython

        shell = get_ipython()
    except ImportError:
        return False
    return shell is not None and type(shell).__name__ == "ZMQInteractiveShell"


def mode(stream: IO[str] | None = None) -> str:
    """``"off"``, ``"terminal"`` or ``"log"`` for a bar writing to ``stream`` (default stderr)."""
    value = os.environ.get(ENV, "").strip().lower()
    if not enabled():
        return "off"
    if value == "log":
        return "log"
    stream = sys.stderr if stream is None else stream
    isatty = getattr(stream, "isatty", None)
    if value in ("1", "true", "yes", "on") or (callable(isatty) and isatty()) or in_notebook():
        return "terminal"
    return "log"


class _LineWriter:
    """A stream wrapper for log mode: tqdm redraws a bar with ``"\\r" + text``; here every redraw
    becomes one line ending in ``"\\n"``."""

    def __init__(self, stream: IO[str]) -> None:
        self.stream = stream

    def write(self, text: str) -> int:
        for chunk in text.replace("\n", "\r").split("\r"):
            if chunk.strip():
                self.stream.write(chunk.rstrip() + "\n")
        return len(text)

    def flush(self) -> None:
        self.stream.flush()

    def isatty(self) -> bool:
        return False


def bar(
    iterable: Iterable[Any] | None = None,
    *,
    desc: str | None = None,
    total: float | None = None,
    disable: bool = False,
    file: IO[str] | None = None,
    **kwargs: Any,
) -> Any:
    """A tqdm bar under the package's policy (arguments as :class:`tqdm.tqdm`; ``disable=True``
    is the caller's own switch, e.g. ``progress=False``).

    Log mode: ``miniters`` = ceil(total / :data:`LOG_LINES`) and ``mininterval`` =
    :data:`LOG_MIN_INTERVAL_S`, so a loop of n steps prints at most LOG_LINES + 2 lines, whatever n.
    """
    stream = sys.stderr if file is None else file
    how = "off" if disable else mode(stream)
    if how == "terminal":
        from tqdm.auto import tqdm

        return tqdm(iterable, desc=desc, total=total, file=file, **kwargs)
    from tqdm import tqdm as plain

    if how == "off":
        return plain(iterable, desc=desc, total=total, disable=True, **kwargs)
    if total is None and iterable is not None and hasattr(iterable, "__len__"):
        total = len(iterable)  # type: ignore[arg-type]
    kwargs.pop("mininterval", None)
    kwargs.pop("miniters", None)
    kwargs.pop("dynamic_ncols", None)
    every = max(1, math.ceil(total / LOG_LINES)) if total else None
    return _log_class()(
        iterable, desc=desc, total=total, file=_LineWriter(stream), mininterval=LOG_MIN_INTERVAL_S,
        miniters=every, maxinterval=float("inf"), ascii=True, bar_format=_LOG_FORMAT if total else None, **kwargs,
    )


def _log_class() -> type:
    """tqdm whose postfix and description changes wait for the next scheduled line (a live bar
    redraws at each change: one log line per ``set_postfix``)."""
    from tqdm import tqdm as plain

    class LogBar(plain):  # type: ignore[misc, valid-type]
        def set_postfix(self, ordered_dict: Any = None, refresh: bool = True, **kwargs: Any) -> None:
            super().set_postfix(ordered_dict, refresh=False, **kwargs)

        def set_postfix_str(self, s: str = "", refresh: bool = True) -> None:
            super().set_postfix_str(s, refresh=False)

        def set_description(self, desc: str | None = None, refresh: bool = True) -> None:
            super().set_description(desc, refresh=False)

    return LogBar


# no bar drawing in a log: what a line says is the count, the rate and the time left
_LOG_FORMAT = "{desc}: {percentage:3.0f}% {n_fmt}/{total_fmt} [{elapsed}<{remaining}, {rate_fmt}{postfix}]"

