"""Metric kernels compiled once per install, with a message (vssl_helpers/kernel_cache.py)."""

from __future__ import annotations

import io

from vssl_helpers import kernel_cache as K


def test_first_use_says_it_compiles_and_how_long_then_never_again(tmp_path, monkeypatch):
    from vssl_helpers import _run_kernels  # noqa: F401  (compiled or loaded here, outside the timing)

    stamp = tmp_path / "numba" / "vssl-kernels-test.stamp"
    monkeypatch.setattr(K, "stamp_path", lambda: stamp)
    out = io.StringIO()
    K.ensure_compiled(out)
    lines = out.getvalue().splitlines()
    assert len(lines) == 2, lines
    assert lines[0].startswith("vssl: compiling the metric kernels") and K.EXPECTED in lines[0]
    assert lines[1].startswith("vssl: metric kernels compiled in ") and " s " in lines[1]
    assert stamp.is_file()
    again = io.StringIO()
    K.ensure_compiled(again)
    assert again.getvalue() == "", "once compiled (stamp present), no message and no work"


def test_stamp_names_the_kernel_source_and_lives_in_numbas_cache_folder():
    from vssl_helpers import _run_kernels

    path = K.stamp_path()
    assert path.name.startswith("vssl-kernels-") and path.suffix == ".stamp"
    assert str(path.parent) == _run_kernels.active_counts._cache._cache_path
    assert path.is_file(), "importing the kernels compiled them and left the stamp"
