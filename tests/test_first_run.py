"""The first run's shortcuts change no result: the synthetic manifest drawn from the cached arrays
is the one drawn from the samples (scenes and clips generated again)."""

from __future__ import annotations

import pytest

from vssl_helpers.embedded import synthetic_manifest
from vssl_helpers.negatives import manifest_for_samples
from vssl_helpers.testsets.synthetic import SyntheticConfig, SyntheticSet


@pytest.mark.parametrize("sources", [1, 2])
def test_synthetic_manifest_from_arrays_is_the_one_from_the_samples(tmp_path, monkeypatch, sources):
    monkeypatch.setenv("VSSL_CACHE", str(tmp_path))
    ds = SyntheticSet(SyntheticConfig(split="test", n_images=12, sources=sources, seed=3))
    reference = manifest_for_samples(ds, name=f"synthetic-test-s{sources}-seed3-n12", n_seeds=3, manifest_seed=0)
    fast = synthetic_manifest(ds, n_seeds=3)
    assert fast.name == reference.name
    assert fast.dumps() == reference.dumps() and fast.sha256 == reference.sha256
