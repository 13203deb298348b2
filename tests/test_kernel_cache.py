"""Metric kernels compiled once per install, with a message (vssl_helpers/kernel_cache.py)."""

from __future__ import annotations

import io

import torch

from vssl_helpers import kernel_cache as K
from vssl_helpers import metrics as M


def test_first_use_says_it_compiles_and_how_long_then_never_again(tmp_path, monkeypatch):
    M.ensure_kernels()  # compiled or loaded here, outside the timing

    stamp = tmp_path / "numba" / "vssl-kernels-test.stamp"
    monkeypatch.setattr(K, "stamp_path", lambda: stamp)
    monkeypatch.setattr(K, "_ready", False)
    calls = []
    out = io.StringIO()
    K.ensure_compiled(lambda: calls.append(M._warm_up_kernels()), out)
    lines = out.getvalue().splitlines()
    assert len(lines) == 2, lines
    assert lines[0].startswith("vssl: compiling the metric kernels") and K.EXPECTED in lines[0]
    assert lines[1].startswith("vssl: metric kernels compiled in ") and " s " in lines[1]
    assert stamp.is_file()
    assert len(calls) == 1
    monkeypatch.setattr(K, "_ready", False)  # a new process: only the stamp remembers
    again = io.StringIO()
    K.ensure_compiled(lambda: calls.append(None), again)
    assert again.getvalue() == "" and len(calls) == 1, "once compiled (stamp present), no message and no work"


def test_stamp_names_the_kernel_source_and_lives_in_numbas_cache_folder():
    from vssl_helpers import _run_kernels

    path = K.stamp_path()
    assert path.name.startswith("vssl-kernels-") and path.suffix == ".stamp"
    assert str(path.parent) == _run_kernels.active_counts._cache._cache_path
    M.ciou(torch.rand(1, 7, 7), torch.ones(1, 224, 224, dtype=torch.bool), 0.5)
    assert path.is_file(), "a metric call compiled the kernels and left the stamp"
