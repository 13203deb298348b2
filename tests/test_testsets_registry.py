"""Test sets are registered like models: the TestSet protocol, the registry, and a test set written
outside the package (a small class on BaseTestSet) going through the same engine as the package's."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from vssl_helpers.testsets import (
    BaseTestSet,
    Sample,
    TestSetError,
    create_testset,
    get_testset,
    list_testsets,
    register_testset,
)
import vssl_helpers.testsets as T  # T.TestSet: a Test* name imported here would be collected by pytest
from vssl_helpers.testsets import registry as R


class WrappedSet(BaseTestSet):
    """A third-party test set: only the minimal members (name, ids, sample_rate, sample); every
    other member of the protocol comes from BaseTestSet. Here it serves another set's samples."""

    def __init__(self, samples: list[Sample], name: str = "mine") -> None:
        self.name = name
        self._samples = samples
        self.ids = [s.id for s in samples]
        self.sample_rate = samples[0].sample_rate

    def sample(self, j: int) -> Sample:
        return self._samples[j]


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory):
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("VSSL_CACHE", str(tmp_path_factory.mktemp("cache")))
        ds = create_testset("synthetic", n_images=6)
        yield ds


def test_package_registers_its_three_sets_in_paper_order() -> None:
    assert list_testsets()[:3] == ["synthetic", "vggss", "is3"]


def test_unknown_name_lists_the_known_ones() -> None:
    with pytest.raises(TestSetError, match=r"testset: unknown test set 'flickr'; expected one of synthetic, vggss, is3"):
        get_testset("flickr")
    with pytest.raises(TestSetError, match="unknown test set"):
        create_testset("flickr")


def test_options_are_checked_against_the_factory(tmp_path: Path) -> None:
    with pytest.raises(TestSetError, match=r"^data_root: only for testset vggss, is3 \(not used with the synthetic test set\)$"):
        create_testset("synthetic", data_root=tmp_path)
    with pytest.raises(TestSetError, match=r"^data_root: required for the vggss test set \(the folder with its media\)$"):
        create_testset("vggss")
    with pytest.raises(TestSetError, match=r"^n_images: only for testset synthetic \(not used with the is3 test set\)$"):
        create_testset("is3", data_root=tmp_path, n_images=3)
    with pytest.raises(TestSetError, match=r"^data_root: no such folder: "):
        create_testset("vggss", data_root=tmp_path / "missing")
    with pytest.raises(TestSetError, match="n_images: must be >= 1, got 0"):
        create_testset("synthetic", n_images=0)


def test_register_and_create_a_third_party_set(synthetic) -> None:
    samples = [synthetic.sample(j) for j in range(4)]

    @register_testset("toy-registry-test")
    def toy(n: int = 4) -> T.TestSet:
        return WrappedSet(samples[:n], name="toy-registry-test")

    try:
        with pytest.raises(ValueError, match="'toy-registry-test' is already registered"):
            register_testset("toy-registry-test")(toy)
        assert "toy-registry-test" in list_testsets()
        ds = create_testset("toy-registry-test", n=3)
        assert isinstance(ds, T.TestSet) and len(ds) == 3 and ds.ids == [s.id for s in samples[:3]]
        with pytest.raises(TestSetError, match="data_root: .*not used with the toy-registry-test test set"):
            create_testset("toy-registry-test", data_root="/tmp")
        # a hint is passed only to a factory that takes it
        assert len(create_testset("toy-registry-test", hints={"manifest": object()})) == 4

        @register_testset("toy-not-a-set")
        def bad() -> object:
            return [1, 2, 3]

        with pytest.raises(TypeError, match="toy-not-a-set.*returned a list, not a TestSet"):
            create_testset("toy-not-a-set")
    finally:
        R._REGISTRY.pop("toy-registry-test", None)
        R._REGISTRY.pop("toy-not-a-set", None)


def test_base_defaults_agree_with_the_synthetic_set(synthetic) -> None:
    """BaseTestSet derives the protocol from sample(j); the synthetic set has its own faster
    versions. Both give the same masks, items, manifest and grouping."""
    mine = WrappedSet([synthetic.sample(j) for j in range(len(synthetic))])
    assert isinstance(mine, T.TestSet) and isinstance(synthetic, T.TestSet)
    np.testing.assert_array_equal(mine.masks(112), synthetic.masks(112))
    assert mine.manifest_items() == synthetic.manifest_items()
    # the default manifest of a set is drawn from its items (seed DEFAULT_MANIFEST_SEED, as the real sets')
    from vssl_helpers.negatives import build_manifest

    assert mine.default_manifest(2).sha256 == build_manifest(synthetic.manifest_items(), name="mine-derived", n_seeds=2).sha256
    assert mine.image_groups() == synthetic.image_groups() == [[j] for j in range(6)]
    assert mine.index(synthetic.ids[4]) == 4
    with pytest.raises(KeyError, match="mine: no sample with id 'nope'"):
        mine.index("nope")
    assert not mine.has_media_files and mine.skipped_samples() == [] and "6 samples of mine" in mine.description()


def test_base_fingerprint_follows_the_data(synthetic) -> None:
    samples = [synthetic.sample(j) for j in range(3)]
    a = WrappedSet(samples).fingerprint(112)
    assert a == WrappedSet([synthetic.sample(j) for j in range(3)]).fingerprint(112)
    changed = [samples[0], samples[1], Sample(**{**samples[2].__dict__, "audio": samples[2].audio * 0.5})]
    assert WrappedSet(changed).fingerprint(112) != a
    assert WrappedSet(samples, name="other").fingerprint(112) != a


def test_demo_manifest_size_is_the_demo_models_size() -> None:
    """The synthetic manifest reads the arrays at the demo models' size, so the engine reuses them."""
    from vssl_helpers.models.demo import DEMO_PREPROCESSING
    from vssl_helpers.testsets.synthetic import MANIFEST_IMAGE_SIZE

    assert MANIFEST_IMAGE_SIZE == DEMO_PREPROCESSING.image_size


def test_engine_evaluates_a_third_party_set_like_the_package_s(synthetic, tmp_path: Path) -> None:
    """The engine has no branch per test-set class: a set built from the synthetic samples through
    BaseTestSet's defaults (images decoded at 224 px, resized by the model's transform) gives the
    maps of the synthetic set itself (its arrays at the model's size)."""
    from vssl_helpers.engine import evaluate
    from vssl_helpers.models import create_model

    manifest = synthetic.default_manifest(2)
    mine = WrappedSet([synthetic.sample(j) for j in range(len(synthetic))])
    model = create_model("demo-random", seed=2)
    ref = evaluate(model, synthetic, manifest, tmp_path / "store")
    got = evaluate(model, mine, manifest, tmp_path / "store")
    assert got.provenance["store_run"] != ref.provenance["store_run"]  # another data fingerprint
    for kind in ("positive", "silence", "noise", "offscreen"):
        torch.testing.assert_close(getattr(got.maps, kind), getattr(ref.maps, kind), rtol=0, atol=1e-5)
    assert got.row == pytest.approx(ref.row, abs=1e-6, nan_ok=True)


def test_cli_testset_choices_come_from_the_registry() -> None:
    out = subprocess.run([sys.executable, "-m", "vssl_helpers.cli", "evaluate", "--help"], capture_output=True,
                         text=True, check=True).stdout
    assert "a registered test set (synthetic, vggss, is3)" in " ".join(out.split())
    bad = subprocess.run([sys.executable, "-m", "vssl_helpers.cli", "evaluate", "--model", "demo-random", "--testset", "nope"],
                         capture_output=True, text=True)
    assert bad.returncode == 2 and "--testset" in bad.stderr and "synthetic, vggss, is3" in bad.stderr, bad.stderr


def test_input_checks_have_one_home_that_the_cli_and_the_book_spell_their_way(tmp_path: Path, capsys) -> None:
    """inputs.check_testset_inputs says "<field>: ..."; the CLI prefixes "--", the book configuration
    "testsets.<name>."; the same check answers all three."""
    from vssl_helpers.cli import main as vssl
    from vssl_helpers.inputs import InputError, check_device, check_testset_inputs
    from vssl_helpers.report.runs import BookConfigError, book_config_from_dict

    missing = tmp_path / "missing"
    with pytest.raises(InputError, match=rf"^data_root: no such folder: {missing}$"):
        check_testset_inputs("is3", data_root=missing)
    assert vssl(["evaluate", "--model", "demo-random", "--testset", "is3", "--data-root", str(missing)]) == 2
    assert f"vssl: error: --data-root: no such folder: {missing}" in capsys.readouterr().err
    cfg = book_config_from_dict({"testsets": {"is3": {"data_root": str(missing)}}, "models": ["demo-random"]},
                                source="cfg.yaml")
    with pytest.raises(BookConfigError, match=rf"^cfg.yaml: testsets.is3.data_root: no such folder: {missing}$"):
        cfg.validate()
    with pytest.raises(InputError, match="^device: not a device: 'gpu0'$"):
        check_device("gpu0")
    with pytest.raises(BookConfigError, match="^cfg.yaml: device: not a device: 'gpu0'$"):
        book_config_from_dict({"testsets": {"is3": {"data_root": str(tmp_path)}}, "models": ["demo-random"],
                               "device": "gpu0"}, source="cfg.yaml").validate()


def test_submodules_are_not_shadowed_by_the_registered_names() -> None:
    """``from vssl_helpers.testsets import synthetic`` is the module in a fresh process (where it
    was not imported yet), not a registered factory of the same name."""
    code = ("from vssl_helpers.testsets import synthetic, vggss, is3; "
            "print(synthetic.GENERATOR_VERSION, vggss.__name__, is3.__name__)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out[1:] == ["vssl_helpers.testsets.vggss", "vssl_helpers.testsets.is3"]
