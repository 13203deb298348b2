"""Plugins: your own model (or test set) from a file, a module or an installed entry point.

The CLI test evaluates a trivial model written to a temporary file and checks its metrics against an
independent computation: its map is constant over the image and a function of the audio alone, so at
the universal threshold a sample is either wholly active (IoU = GT area / image area) or empty.
"""

from __future__ import annotations

import json
import sys
import textwrap
import time
import uuid
from pathlib import Path

import numpy as np
import pytest
import torch

from vssl_helpers.cli import main
from vssl_helpers.inputs import InputError, build_model
from vssl_helpers.models import file_sha256, get_config
from vssl_helpers.plugins import (
    MODEL_GROUP,
    TESTSET_GROUP,
    PluginError,
    model_plugin,
    plugin_record,
    resolve_model,
    resolve_testset,
    plugin_testset_info,
)

ROOT = Path(__file__).resolve().parents[1]

# a model as a user would write it: a constant map, the "smoothness" of the whole clip (RMS of the
# clip over RMS of its first difference): 0 for silence, about 0.7 for white noise, high for tones
RMS_MODEL = """
import torch
from vssl_helpers.models.registry import DotProductMapModel, ModelConfig, Preprocessing

CALLS = []
CONFIG = ModelConfig(name="{name}", family="test", description="constant map = audio smoothness", map_size=(4, 4),
                     map_units="ratio", map_range=(0.0, 1000.0), preprocessing=Preprocessing(image_size=112))


class RMSModel(DotProductMapModel):
    def __init__(self):
        super().__init__()
        self.config = CONFIG

    def encode_images(self, images, gt=None):
        return torch.ones(images.shape[0], 1, 4, 4)

    def encode_audio(self, waveforms):
        x = waveforms.double()
        rms = x.pow(2).mean(dim=1, keepdim=True).sqrt()
        return (rms / (x.diff(dim=1).pow(2).mean(dim=1, keepdim=True).sqrt() + 1e-3)).float()


def factory():
    CALLS.append(1)
    return RMSModel()
"""


def _write(folder: Path, name: str, text: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    p = folder / name
    p.write_text(textwrap.dedent(text), encoding="utf-8")
    return p


def _unique(prefix: str) -> str:
    # the model registry is per process: every test registers its own names
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


@pytest.fixture()
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("VSSL_CACHE", str(tmp_path / "cache"))
    return tmp_path


def test_model_from_a_file_through_the_cli(cache, capsys):
    name = _unique("rms")
    plugin = _write(cache / "mine", "rms_model.py", RMS_MODEL.format(name=name))
    spec = f"{plugin}:factory"
    out = cache / "r.json"
    argv = ["evaluate", "--model", spec, "--testset", "synthetic", "--n-images", "12", "--seeds", "2", "--no-progress",
            "--store", str(cache / "store"), "--out", str(out)]
    assert main(argv) == 0, capsys.readouterr().err
    r = json.loads(out.read_text())
    assert r["model"] == name and r["model_spec"] == spec
    assert r["plugin"]["kind"] == "file" and r["plugin"]["file"] == str(plugin.resolve())
    assert r["plugin"]["sha256"] == file_sha256(plugin)
    assert r["checkpoint_sha256"] is None and r["weights"].startswith(f"plugin:{file_sha256(plugin)[:16]}+state:")
    assert f"plugin rms_model.py ({file_sha256(plugin)[:12]})" in capsys.readouterr().out

    # independent computation of the metrics of a constant map on the same samples and negatives
    from vssl_helpers.embedded import synthetic_manifest
    from vssl_helpers.testsets import SyntheticConfig, SyntheticSet

    ds = SyntheticSet(SyntheticConfig(split="test", n_images=12, sources=1, seed=0))
    manifest = synthetic_manifest(ds, n_seeds=2)
    by_id = {ds[i].id: ds[i] for i in range(len(ds))}
    def smooth(x: np.ndarray) -> float:
        x = np.asarray(x, np.float64)
        return float(np.sqrt(np.mean(x**2)) / (np.sqrt(np.mean(np.diff(x) ** 2)) + 1e-3))

    own = {sid: smooth(s.audio) for sid, s in by_id.items()}
    thr = r["threshold"]["value"]
    noise_max = [smooth(manifest.noise(sid, k, 32000)) for sid in manifest.ids for k in range(2)]
    off_max = [own[manifest.offscreen_clip(sid, k).id] for sid in manifest.ids for k in range(2)]
    q3 = max(np.quantile(noise_max, 0.75), np.quantile(off_max, 0.75), 0.0)  # silence: RMS 0
    assert thr == pytest.approx(q3, rel=1e-5)
    area = {sid: by_id[sid].gt_mask.sum() / by_id[sid].gt_mask.size for sid in manifest.ids}
    ciou = 100 * np.mean([area[sid] if own[sid] > thr else 0.0 for sid in manifest.ids])
    assert 0 < ciou and r["pooled"]["ciou_uth"] == pytest.approx(ciou, abs=1e-3)
    assert r["pooled"]["pia_silence"] == 0.0
    assert r["pooled"]["pia_noise"] == pytest.approx(100 * np.mean([v > thr for v in noise_max]), abs=1e-3)
    assert r["pooled"]["pia_offscreen"] == pytest.approx(100 * np.mean([v > thr for v in off_max]), abs=1e-3)
    assert r["pooled"]["pia_offscreen"] > 0 and r["threshold"]["decisive_type"] == "offscreen"


def test_resolving_twice_is_idempotent_and_the_spec_is_an_alias(tmp_path, monkeypatch):
    name = _unique("twice")
    plugin = _write(tmp_path, "twice_model.py", RMS_MODEL.format(name=name))
    assert resolve_model(f"{plugin}:factory") == name
    monkeypatch.chdir(tmp_path)
    assert resolve_model("twice_model.py:factory") == name  # another spelling of the same file
    assert resolve_model("./twice_model.py:factory") == name and get_config("./twice_model.py:factory").name == name
    assert resolve_model(name) == name
    module = sys.modules[model_plugin(name).factory.split(":")[0]]
    assert len(module.CALLS) == 1, "loaded and called once to check it, whatever the spelling"
    assert get_config(f"{plugin}:factory") is get_config(name)
    model, weights = build_model(f"{plugin}:factory", model_seed=3)
    assert model.config.name == name and weights.startswith(f"plugin:{file_sha256(plugin)[:16]}+state:")
    assert len(module.CALLS) == 2


def test_a_registered_factory_and_a_module_spec(tmp_path, monkeypatch):
    name = _unique("decorated")
    mod = f"vssl_test_pkg_{uuid.uuid4().hex[:8]}"
    _write(tmp_path / mod, "__init__.py", "")
    _write(tmp_path / mod, "models.py", RMS_MODEL.format(name=name) + textwrap.dedent(f"""
        from vssl_helpers.models.registry import register_model

        @register_model(ModelConfig(name="{name}-reg", family="test", description="", map_size=(4, 4),
                                    map_units="rms", map_range=(0.0, 1.0)))
        def registered(**kw):
            return RMSModel()
        """))
    monkeypatch.syspath_prepend(str(tmp_path))
    assert resolve_model(f"{mod}.models:factory") == name
    assert plugin_record(name)["kind"] == "module" and plugin_record(name)["file"].endswith("models.py")
    assert resolve_model(f"{mod}.models:registered") == f"{name}-reg"
    # the package's own factories resolve to their names and stay package models
    assert resolve_model("vssl_helpers.models.demo_zoo:demo_random") == "demo-random"
    assert model_plugin("demo-random") is None


def _install_distribution(root: Path, module: str, models: dict[str, str], testsets: dict[str, str], body: str) -> None:
    """A distribution as pip would leave it (metadata + entry points + module), without pip."""
    dist = root / "foo_vssl-0.1.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: foo-vssl\nVersion: 0.1\n", encoding="utf-8")
    lines = [f"[{MODEL_GROUP}]", *(f"{k} = {v}" for k, v in models.items()),
             f"[{TESTSET_GROUP}]", *(f"{k} = {v}" for k, v in testsets.items())]
    (dist / "entry_points.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    _write(root, f"{module}.py", body)


def test_entry_point_of_an_installed_distribution(tmp_path, monkeypatch, capsys):
    name = _unique("ep")
    module = f"foo_vssl_{uuid.uuid4().hex[:8]}"
    ep = f"foo-model-{uuid.uuid4().hex[:6]}"
    body = RMS_MODEL.format(name=name) + textwrap.dedent("""
        from vssl_helpers.testsets import SyntheticConfig, SyntheticSet

        def testset():
            return SyntheticSet(SyntheticConfig(split="test", n_images=3, sources=1, seed=5))

        def broken():
            raise RuntimeError("no weights here")
        """)
    _install_distribution(tmp_path, module, {ep: f"{module}:factory", f"{ep}-broken": f"{module}:broken"},
                          {f"{ep}-set": f"{module}:testset"}, body)
    monkeypatch.syspath_prepend(str(tmp_path))
    assert resolve_model(ep) == name
    rec = plugin_record(name)
    assert rec["kind"] == "entry point" and rec["entry_point"] == f"{MODEL_GROUP}:{ep}"
    assert rec["distribution"] == "foo-vssl 0.1" and rec["sha256"] == file_sha256(tmp_path / f"{module}.py")
    ds = resolve_testset(f"{ep}-set")
    assert len(ds) == 3 and resolve_testset(f"{ep}-set") is ds
    assert plugin_testset_info(f"{ep}-set").entry_point == f"{TESTSET_GROUP}:{ep}-set"
    with pytest.raises(PluginError, match=f"model spec .{ep}-broken.: the factory raised RuntimeError: no weights here"):
        resolve_model(f"{ep}-broken")
    # an unknown name lists the registered models and the installed entry points
    with pytest.raises(PluginError, match=f"unknown model 'nope-x'; registered models: .*demo-random.*{ep}"):
        resolve_model("nope-x")
    assert main(["models"]) == 0
    assert ep in capsys.readouterr().out


BAD = {
    "raises.py": "raise ImportError('needs a GPU library')\n",
    "attrs.py": "factory = 3\n\ndef other():\n    return 1\n\ndef wrong():\n    return 42\n\n"
                "def boom():\n    raise KeyError('weights')\n\n"
                "from vssl_helpers.models.registry import DotProductMapModel\n"
                "class NoConfig(DotProductMapModel):\n    def encode_images(self, images, gt=None):\n        return images\n"
                "    def encode_audio(self, w):\n        return w\n\n"
                "def no_config():\n    return NoConfig()\n",
}


@pytest.mark.parametrize(
    "spec, message",
    [
        ("::", "malformed"),
        ("x.py:", "malformed"),
        ("mod:not a name", "is not a Python name"),
        ("not a module:f", "is neither a module name nor a .py file"),
        ("no_such_module_xyz.sub:factory", "no module named 'no_such_module_xyz'"),
        ("{d}/missing.py:factory", "no such file: {d}/missing.py"),
        ("{d}/raises.py:factory", "importing {d}/raises.py raised ImportError: needs a GPU library"),
        ("{d}/attrs.py:nothing", "has no attribute 'nothing' \\(callables there: .*other"),
        ("{d}/attrs.py:factory", "is a int, not callable"),
        ("{d}/attrs.py:boom", "the factory raised KeyError: 'weights'"),
        ("{d}/attrs.py:wrong", "the factory returned a int; expected a VSSLModel"),
        ("{d}/attrs.py:no_config", "the model's .config is a NoneType; expected a vssl_helpers.models.registry.ModelConfig"),
        ("no-such-entry-point", "unknown model 'no-such-entry-point'; registered models: .*installed entry points"),
    ],
)
def test_bad_model_specs_name_the_spec_and_what_was_expected(tmp_path, spec, message):
    for fname, text in BAD.items():
        _write(tmp_path, fname, text)
    spec, message = spec.format(d=tmp_path), message.format(d=tmp_path)
    with pytest.raises(PluginError, match=message) as e:
        resolve_model(spec)
    assert spec in str(e.value) or "malformed" not in message
    assert isinstance(e.value, ValueError)


def test_bad_spec_through_the_cli_exits_2_fast(cache, capsys):
    _write(cache, "attrs.py", BAD["attrs.py"])
    t0 = time.perf_counter()
    for spec, what in [(f"{cache}/attrs.py:nothing", "has no attribute 'nothing'"),
                       (f"{cache}/attrs.py:wrong", "expected a VSSLModel"),
                       ("no_such_module_xyz:factory", "no module named 'no_such_module_xyz'")]:
        assert main(["evaluate", "--model", spec, "--testset", "synthetic", "--no-progress"]) == 2
        err = capsys.readouterr().err
        assert err.startswith(f"vssl: error: --model: model spec {spec!r}: ") and what in err
    assert time.perf_counter() - t0 < 10
    assert not (cache / "cache" / "maps").exists(), "no heavy work before the spec is checked"
    with pytest.raises(InputError, match="model: model spec .*no module named"):
        build_model("no_such_module_xyz:factory")


def test_same_config_name_from_another_plugin_or_the_package_is_refused(tmp_path):
    name = _unique("dup")
    a = _write(tmp_path / "a", "m.py", RMS_MODEL.format(name=name))
    b = _write(tmp_path / "b", "m.py", RMS_MODEL.format(name=name))
    assert resolve_model(f"{a}:factory") == name
    with pytest.raises(PluginError, match=f"config name '{name}' is already used by the plugin"):
        resolve_model(f"{b}:factory")
    c = _write(tmp_path / "c", "m.py", RMS_MODEL.format(name="demo-random"))
    with pytest.raises(PluginError, match="'demo-random' is already a registered model"):
        resolve_model(f"{c}:factory")


def test_testset_plugin_from_a_file(tmp_path, monkeypatch, capsys):
    _write(tmp_path, "sets.py", """
        from vssl_helpers.testsets import SyntheticConfig, SyntheticSet

        def tiny(n_images: int = 5):
            return SyntheticSet(SyntheticConfig(split="test", n_images=n_images, sources=2, seed=1))  # one sample per source

        def not_a_set():
            return {"ids": []}
        """)
    spec = f"{tmp_path}/sets.py:tiny"
    ds = resolve_testset(spec)
    assert len(ds) == 10 and len(ds.ids) == 10 and ds.sample(0).gt_mask.shape == (224, 224)
    assert resolve_testset(spec) is ds
    info = plugin_testset_info(spec)
    assert info.kind == "file" and info.sha256 == file_sha256(tmp_path / "sets.py")
    with pytest.raises(PluginError, match="returned a dict without name, ids, sample_rate, sample; expected a "
                                          "vssl_helpers.testsets.base.TestSet"):
        resolve_testset(f"{tmp_path}/sets.py:not_a_set")
    with pytest.raises(PluginError, match="unknown test set 'nope-set'.*vssl_companion.testsets"):
        resolve_testset("nope-set")
    # through the command line: the spec is a test set like `synthetic`, options the factory takes
    # (n_images) are passed to it, and its maps equal those of the same set given by name
    monkeypatch.setenv("VSSL_CACHE", str(tmp_path / "cache"))
    out = tmp_path / "plugin.json"
    assert main(["evaluate", "--model", "demo-random", "--testset", spec, "--n-images", "3", "--seeds", "2",
                 "--no-progress", "--out", str(out)]) == 0
    got = json.loads(out.read_text())
    assert got["testset"] == str((tmp_path / "sets.py").resolve()) + ":tiny"
    assert got["manifest"] == "synthetic-test-s2-seed1-n3" and len(got["per_seed"]) == 2
    assert got["testset_plugin"]["sha256"] == file_sha256(tmp_path / "sets.py")
    assert main(["evaluate", "--model", "demo-random", "--testset", f"{tmp_path}/sets.py:not_a_set",
                 "--no-progress"]) == 2
    assert "vssl: error: --testset: " in capsys.readouterr().err


def test_book_config_takes_plugin_specs_relative_to_the_file(tmp_path):
    from vssl_helpers.report.runs import BookConfigError, book_config_from_dict

    name = _unique("book")
    _write(tmp_path / "plugins", "mine.py", RMS_MODEL.format(name=name))
    (tmp_path / "vggss").mkdir()
    cfg = book_config_from_dict({"testsets": {"vggss": "vggss"}, "models": ["plugins/mine.py:factory", "demo-random"]},
                                source="book.yaml", base=tmp_path)
    spec = f"{(tmp_path / 'plugins' / 'mine.py').resolve()}:factory"
    assert cfg.model_names == [spec, "demo-random"]
    cfg.validate()
    assert get_config(spec).name == name
    bad = book_config_from_dict({"testsets": {"vggss": "vggss"}, "models": {"plugins/none.py:factory": None}},
                                source="book.yaml", base=tmp_path)
    with pytest.raises(BookConfigError, match="book.yaml: models.*none.py:factory: .*no such file"):
        bad.validate()


def test_the_example_model_keeps_the_contract():
    name = resolve_model(str(ROOT / "examples" / "my_model.py") + ":factory")
    model, weights = build_model(name)
    assert model.config.name == name == "my-listening-saliency" and weights.startswith("plugin:")
    assert plugin_record(name)["sha256"] == file_sha256(ROOT / "examples" / "my_model.py")
    gen = torch.Generator().manual_seed(0)
    t = torch.arange(32000) / 16000
    tone = 0.3 * torch.sin(2 * torch.pi * 440 * t)
    audio = torch.stack([torch.zeros(32000), (torch.rand(32000, generator=gen) * 2 - 1), tone])
    gate = model.encode_audio(audio)[:, 0]
    assert gate[0] == 0 and gate[1] < 0.05 and gate[2] > 0.8, "silence and noise close the gate, a tone opens it"
    images = torch.rand(2, 3, 112, 112, generator=gen)
    maps = model.similarity(model.encode_images(images), model.encode_audio(audio[:2]))
    assert maps.shape == (2, 14, 14) and float(maps[0].abs().max()) == 0.0


def test_the_chapter_is_thin_and_follows_its_plugin_file(tmp_path):
    """notebooks/own_model.ipynb defines nothing (the package and the example do the work), and the
    pipeline re-executes it when examples/my_model.py changes (NotebookSpec.inputs)."""
    import ast

    import nbformat

    from vssl_helpers import pipeline

    nb = nbformat.read(ROOT / "notebooks" / "own_model.ipynb", as_version=4)
    for cell in nb.cells:
        if cell.cell_type == "code":
            defs = [type(n).__name__ for n in ast.walk(ast.parse(cell.source))
                    if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Lambda))]
            assert not defs, f"definitions in the chapter: {defs}\n{cell.source}"
    spec = next(s for s in pipeline.NOTEBOOKS if s.template == "notebooks/own_model.ipynb")
    assert spec.parameters["models"][0] == "examples/my_model.py:factory" and spec.inputs == ("examples/my_model.py",)
    assert "book/generated/own_model" in (ROOT / "_toc.yml").read_text(encoding="utf-8")

    # a copy of the chapter and its example in a scratch root: reused until the example changes
    (tmp_path / "notebooks").mkdir()
    (tmp_path / "examples").mkdir()
    (tmp_path / spec.template).write_bytes((ROOT / spec.template).read_bytes())
    example = tmp_path / "examples" / "my_model.py"
    example.write_text("# v1\n", encoding="utf-8")
    out = tmp_path / "out"
    out.mkdir()
    executed = nbformat.read(tmp_path / spec.template, as_version=4)
    executed.metadata["vssl"] = pipeline._provenance(spec, tmp_path, False)
    time.sleep(0.01)
    nbformat.write(executed, out / spec.output)
    assert pipeline.is_up_to_date(spec, tmp_path, out)
    example.write_text("# v2\n", encoding="utf-8")
    assert not pipeline.is_up_to_date(spec, tmp_path, out)


def test_output_names_of_plugin_specs_are_file_names():
    from vssl_helpers.pipeline import _slug

    assert _slug("demo-lvs") == "demo_lvs"
    assert _slug("/data/my models/mine.py:factory") == "data_my_models_mine_py_factory"


def test_real_data_book_with_a_plugin_and_its_checkpoint(tmp_path):
    """A plugin in a real-data book: pre-flight records the plugin and its checkpoint's own sha256,
    and the book's runs evaluate it on the media, keyed by the spec the configuration gives."""
    from vssl_helpers.report.runs import book_config_from_dict, book_results, book_sets, preflight
    from vssl_helpers.testsets.synthetic import SyntheticConfig, SyntheticSet, write_vggss_layout

    name = _unique("real")
    plugin = _write(tmp_path / "plugins", "mine.py", RMS_MODEL.format(name=name))
    write_vggss_layout(SyntheticSet(SyntheticConfig(split="test", n_images=3, sources=1, seed=3)), tmp_path / "vggss",
                       progress=False)
    resolve_model(f"{plugin}:factory")
    ckpt = tmp_path / "mine.pt"
    torch.save({}, ckpt)  # the plugin has no parameters: its state dict is empty
    cfg = book_config_from_dict({"testsets": {"vggss": "vggss"}, "models": {"plugins/mine.py:factory": "mine.pt"},
                                 "seeds": 2, "store": "store"}, source="book.yaml", base=tmp_path)
    spec = f"{plugin.resolve()}:factory"
    record = preflight(cfg)
    assert record["models"] == [{"name": spec, "checkpoint": str(ckpt.resolve()), "sha256": file_sha256(ckpt),
                                 "plugin": plugin_record(name)}]
    results = book_results(book_sets(cfg), cfg.model_names, cfg)
    r = results["vggss"][spec]
    assert r.model == name and r.row["pia_silence"] == 0.0 and r.row["n_samples"] == 3
    assert r.provenance["weights"] == f"plugin:{file_sha256(plugin)[:16]}+sha256:{file_sha256(ckpt)}"
