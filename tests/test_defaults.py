"""One home for run defaults (vssl_helpers.defaults): the notebooks' parameter cells, the book's
chapter parameters, the committed table of contents, the command line, the book configuration, the
test-set loader and the training configuration all agree with RunDefaults."""

from __future__ import annotations

import ast
import inspect
import json
from pathlib import Path

import pytest
import yaml

from vssl_helpers.defaults import DEFAULTS, QUICK, RunDefaults

ROOT = Path(__file__).resolve().parents[1]
TEMPLATES = sorted((ROOT / "notebooks").glob("*.ipynb"))


def parameter_cell(path: Path) -> dict[str, object]:
    """The ``parameters`` cell of a notebook template as {name: value}; every statement must be a
    plain assignment of a literal (papermill injects its values after this cell)."""
    nb = json.loads(path.read_text(encoding="utf-8"))
    cells = [c for c in nb["cells"] if "parameters" in c.get("metadata", {}).get("tags", [])]
    assert len(cells) == 1, f"{path.name}: expected one cell tagged 'parameters', found {len(cells)}"
    tree = ast.parse("".join(cells[0]["source"]))
    out: dict[str, object] = {}
    for node in tree.body:
        assert isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name), (
            f"{path.name}: the parameters cell may hold only `name = literal` lines, got {ast.unparse(node)!r}")
        out[node.targets[0].id] = ast.literal_eval(node.value)  # raises on anything but a literal
    return out


def test_every_template_has_a_literal_parameters_cell():
    assert len(TEMPLATES) >= 7
    for path in TEMPLATES:
        assert parameter_cell(path), path.name


# the run-level parameters a notebook may declare, and the RunDefaults value each must equal
_RUN_LEVEL = {
    "n_seeds": DEFAULTS.n_seeds,
    "train_steps": DEFAULTS.train_steps,
    "n_train_images": DEFAULTS.n_train_images,
    "model_seed": DEFAULTS.model_seed,
    "reference_models": list(DEFAULTS.reference_models),
}


@pytest.mark.parametrize("path", TEMPLATES, ids=lambda p: p.stem)
def test_notebook_parameter_cells_equal_the_run_defaults(path):
    params = parameter_cell(path)
    for name, expected in _RUN_LEVEL.items():
        if name in params:
            assert params[name] == expected, f"{path.name}: {name} = {params[name]!r}, RunDefaults says {expected!r}"
    if "models" in params:
        expected = list({"compat_effects": DEFAULTS.compat_models, "own_model": DEFAULTS.own_model_models}.get(path.stem, DEFAULTS.models))
        assert params["models"] == expected, path.name
    if "compared_models" in params:  # the "Beyond the paper" chapters compare the threshold chapters' models
        assert params["compared_models"] == list(DEFAULTS.threshold_models), path.name
    if "plain_models" in params:
        from vssl_helpers.report.negatives_training import NEGAWARE, PLAIN_MODELS

        assert params["plain_models"] == list(PLAIN_MODELS) and params["negaware_model"] == NEGAWARE, path.name
    if "bank_models" in params:
        from vssl_helpers.report.noise_bank import BANK_MODELS

        assert params["bank_models"] == list(BANK_MODELS), path.name
    if "model" in params:  # the threshold chapter, one copy per model: its default is the first
        assert params["model"] == DEFAULTS.threshold_models[0], path.name
    if "n_test_images" in params:
        # the dataset-extension chapter shows the embedded test set, the result chapters the book's
        expected = DEFAULTS.n_images if path.stem == "dataset_extension" else DEFAULTS.book_images
        assert params["n_test_images"] == expected, f"{path.name}: n_test_images = {params['n_test_images']}"


def test_book_runs_each_notebook_with_its_own_defaults():
    """What a reader gets running a template by hand in Jupyter is what the book shows: every
    parameter the pipeline passes equals the template's default (except the per-copy model of the
    threshold chapter)."""
    from vssl_helpers.pipeline import NOTEBOOKS

    assert {s.template for s in NOTEBOOKS} == {f"notebooks/{p.name}" for p in TEMPLATES}
    for spec in NOTEBOOKS:
        cell = parameter_cell(ROOT / spec.template)
        for name, value in spec.effective_parameters().items():
            assert name in cell, f"{spec.output}: the pipeline passes {name}, the template does not declare it"
            if name == "model" and spec.template.endswith("threshold_analysis.ipynb"):
                assert value in DEFAULTS.threshold_models
                continue
            assert cell[name] == value, f"{spec.output}: {name}: the book runs {value!r}, the template says {cell[name]!r}"


def test_pipeline_parameters_come_from_the_defaults():
    from vssl_helpers import pipeline

    assert pipeline.THRESHOLD_MODELS == DEFAULTS.threshold_models
    results = [s for s in pipeline.NOTEBOOKS if s.prepare == "vssl_helpers.report.runs:prepare"]
    # embedded, threshold pages, table, figures, compat, own model, 3 "Beyond the paper" chapters
    assert len(results) == len(DEFAULTS.threshold_models) + 5 + 3
    for spec in results:
        p = spec.effective_parameters()
        assert {k: p[k] for k in DEFAULTS.book_parameters()} == DEFAULTS.book_parameters(), spec.output
        q = spec.effective_parameters(quick=True)
        assert q["n_test_images"] == QUICK.book_images and q["n_seeds"] == QUICK.n_seeds, spec.output
        assert q["train_steps"] == QUICK.train_steps and q["n_train_images"] == QUICK.n_train_images, spec.output
    assert DEFAULTS.book_parameters() == {"n_test_images": 200, "n_seeds": 10, "train_steps": 600,
                                          "n_train_images": 4000, "model_seed": 0}


def test_committed_toc_lists_one_threshold_page_per_default_model():
    from vssl_helpers.pipeline import _toc_files

    toc = yaml.safe_load((ROOT / "_toc.yml").read_text(encoding="utf-8"))
    pages = [Path(f).stem for f in _toc_files(toc) if Path(f).stem.startswith("threshold_analysis_")]
    assert pages == [f"threshold_analysis_{m.replace('-', '_')}" for m in DEFAULTS.threshold_models]


def test_command_line_defaults_are_the_run_defaults():
    from vssl_helpers.cli import build_parser

    ap = build_parser()
    ev = ap.parse_args(["evaluate", "--model", "demo-random", "--testset", "synthetic"])
    assert (ev.batch_size, ev.shard_size, ev.workers, ev.device, ev.dtype, ev.model_seed, ev.on_missing) == (
        DEFAULTS.batch_size, DEFAULTS.shard_size, DEFAULTS.workers, DEFAULTS.device, DEFAULTS.dtype,
        DEFAULTS.model_seed, DEFAULTS.on_missing)
    bk = ap.parse_args(["book"])
    assert (bk.seeds, bk.device, bk.workers, bk.batch_size, bk.on_missing) == (
        DEFAULTS.n_seeds, DEFAULTS.device, DEFAULTS.workers, DEFAULTS.batch_size, DEFAULTS.on_missing)


def test_library_defaults_are_the_run_defaults():
    from vssl_helpers.embedded import DEFAULT_TEST, synthetic_manifest
    from vssl_helpers.engine import EvalOptions
    from vssl_helpers.inputs import load_testset
    from vssl_helpers.models.training import TrainConfig
    from vssl_helpers.report import runs
    from vssl_helpers.report.compat_effects import EFFECT_MODELS, compat_effects

    assert DEFAULT_TEST.n_images == DEFAULTS.n_images
    sig = inspect.signature(load_testset).parameters
    assert sig["n_seeds"].default == DEFAULTS.n_seeds
    assert sig["n_images"].default is None  # None: the set's own default, checked below
    from vssl_helpers.testsets.synthetic import synthetic_testset

    assert len(synthetic_testset()) == DEFAULTS.n_images
    assert inspect.signature(synthetic_manifest).parameters["n_seeds"].default == DEFAULTS.n_seeds
    opt = EvalOptions()
    assert (opt.batch_size, opt.shard_size, opt.num_workers, opt.device, opt.dtype) == (
        DEFAULTS.batch_size, DEFAULTS.shard_size, DEFAULTS.workers, DEFAULTS.eval_device, DEFAULTS.dtype)
    tc = TrainConfig()
    assert (tc.steps, tc.warmup_steps, tc.n_train_images, tc.batch_size) == (
        DEFAULTS.train_steps, DEFAULTS.warmup_steps, DEFAULTS.n_train_images, DEFAULTS.train_batch_size)
    assert runs.DEMO_MODELS == DEFAULTS.models and EFFECT_MODELS == DEFAULTS.compat_models
    cfg = runs.book_config_from_dict({"testsets": {}, "models": {}})
    assert (cfg.n_seeds, cfg.device, cfg.workers, cfg.batch_size) == (
        DEFAULTS.n_seeds, DEFAULTS.device, DEFAULTS.workers, DEFAULTS.batch_size)
    for fn in (runs.prepare, runs.book_sets, runs.demo_test_sets):
        p = inspect.signature(fn).parameters
        assert (p["n_test_images"].default, p["n_seeds"].default) == (DEFAULTS.n_images, DEFAULTS.n_seeds), fn.__name__
    p = inspect.signature(compat_effects).parameters
    assert (p["n_test_images"].default, p["n_seeds"].default) == (DEFAULTS.book_images, DEFAULTS.n_seeds)


def test_defaults_are_frozen_and_serialisable():
    with pytest.raises(AttributeError):
        DEFAULTS.n_seeds = 3  # type: ignore[misc]
    d = DEFAULTS.to_dict()
    assert json.loads(json.dumps(d)) == d and RunDefaults(**{k: tuple(v) if isinstance(v, list) else v
                                                              for k, v in d.items()}) == DEFAULTS
    # every demo model of the book is registered, every threshold page model is one of them
    from vssl_helpers.models import list_models

    assert set(DEFAULTS.models) <= set(list_models())
    assert set(DEFAULTS.threshold_models) | set(DEFAULTS.compat_models) | set(DEFAULTS.reference_models) <= set(DEFAULTS.models)
