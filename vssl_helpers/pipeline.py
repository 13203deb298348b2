"""Notebook pipeline: execute the parameterized notebook templates with papermill, build the book.

Run through the one command line, ``vssl book`` (:mod:`vssl_helpers.cli`; from the repository root,
with the project's virtual environment)::

    vssl book [--out book/generated] [--quick] [--force]
    vssl book --no-build [--out DIR] [--quick] [--force]    # only execute the notebooks
    vssl book --config real.yaml                            # the real-data book

``vssl book`` executes every template listed in :data:`NOTEBOOKS` into ``book/generated/`` and then builds
the Jupyter Book (``_config.yml``/``_toc.yml`` at the repository root) with warnings as errors;
``--no-build`` only executes. With ``--config`` (a :class:`~vssl_helpers.report.runs.BookConfig` file:
real media folders and checkpoints) the chapters run on the real test sets, once per configured model,
into ``book/real/``, with a table of contents written there (``book/real/_toc.yml``) and the site built
into ``_build/real/_build/html``. Before its first notebook, a real-data book is checked as a whole
(:func:`vssl_helpers.report.runs.preflight`: media of every set, manifests, every checkpoint loaded
into its model); a problem exits with status 2 and ``vssl: error: ...``. Its front page
(``book/real/intro.md``, :func:`write_real_intro`) names the data, the checkpoint files with their
sha256 and the skipped samples. An executed notebook is reused when it is newer than its template and
was made from the same template content, parameters and package version (recorded under
``metadata.vssl`` of the executed notebook); ``--force`` re-executes everything.

To add a chapter: append a :class:`NotebookSpec` to :data:`NOTEBOOKS` and its ``book/generated/<name>``
entry to ``_toc.yml``; the pipeline checks that every executed notebook is in the table of contents.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .defaults import DEFAULTS, QUICK

__all__ = [
    "NOTEBOOKS",
    "THRESHOLD_MODELS",
    "NotebookSpec",
    "NotebookExecutionError",
    "BookBuildError",
    "repo_root",
    "execute_notebooks",
    "execute_notebook",
    "is_up_to_date",
    "check_toc",
    "build_book",
    "real_book_specs",
    "write_real_toc",
    "write_real_intro",
    "run_book",
    "main",
]

#: Tag papermill puts on the cell it injects with the run's parameters.
INJECTED_PARAMETERS_TAG = "injected-parameters"
#: Jupyter Book / myst-nb tag that removes a cell (input and output) from the page.
REMOVE_CELL_TAG = "remove-cell"
#: Key under the executed notebook's metadata where the pipeline records how it was made.
METADATA_KEY = "vssl"
#: Kernel installed into the project's venv by scripts/bootstrap.sh.
PREFERRED_KERNEL = "vssl-companion"
#: Where executed notebooks go, relative to the repository root (``_toc.yml`` points there).
DEFAULT_OUT = Path("book") / "generated"
#: Where the real-data book's executed notebooks and its generated ``_toc.yml`` go.
REAL_OUT = Path("book") / "real"
#: Build folder of the real-data book (Jupyter Book writes the site to ``<it>/_build/html``).
REAL_BUILD = Path("_build") / "real"


@dataclass(frozen=True)
class NotebookSpec:
    """One executed notebook of the book.

    Attributes:
        template: path of the committed template, relative to the repository root.
        output: file name of the executed notebook inside the output folder (``book/generated``).
        parameters: papermill parameters (JSON-serialisable values).
        quick_parameters: overrides of ``parameters`` for ``--quick`` runs (small, fast settings).
        timeout: per-cell timeout in seconds (None: no limit).
        prepare: ``"module:function"`` called with the effective parameters before the notebook is
            executed (e.g. training the demo models with a progress bar on the console, so that the
            notebook only loads them from the cache).
        title: replaces the first ``# `` heading of the executed notebook (its page and sidebar
            title), for templates executed several times (one page per model).
        inputs: files outside the package (relative to the repository root) that the notebook runs,
            e.g. a plugin model under ``examples/``: a change to one re-executes the notebook.
    """

    template: str
    output: str
    parameters: Mapping[str, Any] = field(default_factory=dict)
    quick_parameters: Mapping[str, Any] = field(default_factory=dict)
    timeout: int | None = None
    prepare: str | None = None
    title: str | None = None
    inputs: tuple[str, ...] = ()

    def effective_parameters(self, quick: bool = False) -> dict[str, Any]:
        """Return the parameters of a run, normalised as they round-trip through JSON."""
        params = dict(self.parameters)
        if quick:
            params.update(self.quick_parameters)
        return json.loads(json.dumps(params, sort_keys=True))


#: Parameters shared by the result chapters (same test sets, seeds and trained models as the
#: embedded benchmark, so the map store computes each model's maps once for all of them).
# The book's own runs use DEFAULTS.book_images (200) test images (x 10 seeds): the full 500-image
# figures of the demo models come from the committed multi-seed study (benchmarks/results/), and a
# fresh `make book` must stay within minutes on 2 cores (the 500-image embedded chapter alone took
# 18 min there).
_RESULT_PARAMETERS: dict[str, Any] = DEFAULTS.book_parameters()
_RESULT_QUICK: dict[str, Any] = QUICK.book_parameters()

#: Models with a threshold-analysis chapter each (the trained demo models and the audio-blind
#: saliency baseline; random weights and the binary oracle have nothing to show there).
THRESHOLD_MODELS: tuple[str, ...] = DEFAULTS.threshold_models

def _slug(model: str) -> str:
    """A model name as it appears in output file names (``demo-lvs`` -> ``demo_lvs``; a plugin spec
    ``/path/my_model.py:factory`` -> ``path_my_model_py_factory``)."""
    return re.sub(r"[^0-9A-Za-z]+", "_", model).strip("_")


#: The executed chapters of the book, in execution order.
NOTEBOOKS: list[NotebookSpec] = [
    NotebookSpec(
        template="notebooks/metric_definitions.ipynb",
        output="metric_definitions.ipynb",
        parameters={"example_seed": 0},
    ),
    NotebookSpec(
        template="notebooks/embedded_benchmark.ipynb",
        output="embedded_benchmark.ipynb",
        parameters=dict(_RESULT_PARAMETERS),
        quick_parameters=dict(_RESULT_QUICK),
        prepare="vssl_helpers.report.runs:prepare",
    ),
    NotebookSpec(
        template="notebooks/dataset_extension.ipynb",
        output="dataset_extension.ipynb",
        parameters={"n_test_images": DEFAULTS.n_images, "n_seeds": DEFAULTS.n_seeds},
        quick_parameters={"n_test_images": QUICK.n_images, "n_seeds": QUICK.n_seeds},
    ),
    *(
        NotebookSpec(
            template="notebooks/threshold_analysis.ipynb",
            output=f"threshold_analysis_{_slug(_model)}.ipynb",
            parameters={"model": _model, **_RESULT_PARAMETERS},
            quick_parameters={**_RESULT_QUICK, "sweep_points": 9, "sweep_seeds": 1},
            prepare="vssl_helpers.report.runs:prepare",
            title=f"Threshold analysis: {_model}",
        )
        for _model in THRESHOLD_MODELS
    ),
    NotebookSpec(
        template="notebooks/results_tables.ipynb",
        output="results_tables.ipynb",
        parameters=dict(_RESULT_PARAMETERS),
        quick_parameters=dict(_RESULT_QUICK),
        prepare="vssl_helpers.report.runs:prepare",
    ),
    NotebookSpec(
        template="notebooks/qualitative_figures.ipynb",
        output="qualitative_figures.ipynb",
        parameters=dict(_RESULT_PARAMETERS),
        quick_parameters={**_RESULT_QUICK, "images": [0]},
        prepare="vssl_helpers.report.runs:prepare",
    ),
    NotebookSpec(
        template="notebooks/compat_effects.ipynb",
        output="compat_effects.ipynb",
        # the result chapters' set and trained models: metric switches rescore their stored maps
        parameters={**_RESULT_PARAMETERS, "models": list(DEFAULTS.compat_models), "effect_images": 48, "effect_seeds": 2},
        quick_parameters={**_RESULT_QUICK, "effect_images": 8, "effect_seeds": 1},
        prepare="vssl_helpers.report.runs:prepare",
    ),
    NotebookSpec(
        # "Evaluate your own model": the plugin of examples/ beside demo models of the result chapters
        template="notebooks/own_model.ipynb",
        output="own_model.ipynb",
        parameters={**_RESULT_PARAMETERS, "models": list(DEFAULTS.own_model_models)},
        quick_parameters=dict(_RESULT_QUICK),
        prepare="vssl_helpers.report.runs:prepare",
        inputs=("examples/my_model.py",),
    ),
    # "Beyond the paper" (issue 15): analyses of the result chapters' stored maps (no new runs)
    *(
        NotebookSpec(
            template=f"notebooks/{_name}.ipynb",
            output=f"{_name}.ipynb",
            parameters=dict(_RESULT_PARAMETERS),
            quick_parameters={**_RESULT_QUICK, **_quick},
            prepare="vssl_helpers.report.runs:prepare",
        )
        for _name, _quick in (("beyond_audio_sensitivity", {}),
                              ("beyond_uncertainty", {"n_resamples": 200}),
                              ("beyond_threshold_sensitivity", {"curve_points": 5}))
    ),
    # "Beyond the paper" (issue 15 items 4-7): they read the result chapters' stored maps (no prepare
    # hook: the chapters above have filled the map store); only the noise-bank chapter computes new
    # maps (the bank's noise maps, K clips per seed, stored for the next build)
    NotebookSpec(
        template="notebooks/beyond_metric_relations.ipynb",
        output="beyond_metric_relations.ipynb",
        parameters={**_RESULT_PARAMETERS, "compared_models": list(DEFAULTS.threshold_models)},
        quick_parameters=dict(_RESULT_QUICK),
    ),
    NotebookSpec(
        template="notebooks/beyond_compat_rankings.ipynb",
        output="beyond_compat_rankings.ipynb",
        parameters={**_RESULT_PARAMETERS, "compared_models": list(DEFAULTS.threshold_models), "effect_images": 48,
                    "effect_seeds": 2},
        quick_parameters={**_RESULT_QUICK, "effect_images": 8, "effect_seeds": 1},
    ),
    NotebookSpec(
        template="notebooks/beyond_negatives_training.ipynb",
        output="beyond_negatives_training.ipynb",
        parameters={**_RESULT_PARAMETERS, "plain_models": ["demo-ezvsl", "demo-lvs"], "negaware_model": "demo-negaware"},
        quick_parameters=dict(_RESULT_QUICK),
    ),
    NotebookSpec(
        template="notebooks/beyond_noise_bank.ipynb",
        output="beyond_noise_bank.ipynb",
        parameters={**_RESULT_PARAMETERS, "bank_models": ["demo-ezvsl", "demo-lvs", "demo-negaware"], "bank_size": 8},
        quick_parameters={**_RESULT_QUICK, "bank_size": 2},
    ),
]


def real_book_specs(config: str | Path) -> list[NotebookSpec]:
    """The chapters of a real-data book: the same templates as :data:`NOTEBOOKS` minus the embedded
    benchmark, run on the configured real test sets, one threshold-analysis page per configured
    model. Every spec carries the (absolute) configuration path as its ``book_config`` parameter."""
    from .report.runs import load_book_config

    cfg = load_book_config(config)
    base: dict[str, Any] = {"book_config": str(Path(config).resolve()), "n_seeds": cfg.n_seeds}
    models = cfg.model_names
    prepare = "vssl_helpers.report.runs:prepare"
    by_template = {s.template: s for s in NOTEBOOKS}
    return [
        by_template["notebooks/metric_definitions.ipynb"],
        NotebookSpec("notebooks/dataset_extension.ipynb", "dataset_extension.ipynb", parameters=base,
                     quick_parameters={"example_rows": [0]}),
        *(
            NotebookSpec("notebooks/threshold_analysis.ipynb", f"threshold_analysis_{_slug(m)}.ipynb",
                         parameters={**base, "model": m}, prepare=prepare, title=f"Threshold analysis: {m}",
                         quick_parameters={"sweep_points": 9, "sweep_seeds": 1, "explorer_rows": [0, 1]})
            for m in models
        ),
        NotebookSpec("notebooks/results_tables.ipynb", "results_tables.ipynb",
                     parameters={**base, "models": models, "reference_models": []}, prepare=prepare),
        NotebookSpec("notebooks/qualitative_figures.ipynb", "qualitative_figures.ipynb",
                     parameters={**base, "models": models}, prepare=prepare, quick_parameters={"images": [0]}),
        *(
            NotebookSpec(f"notebooks/{name}.ipynb", f"{name}.ipynb", prepare=prepare,
                         parameters={**base, "models": models, "reference_models": []})
            for name in ("beyond_audio_sensitivity", "beyond_uncertainty", "beyond_threshold_sensitivity")
        ),
        # "Beyond the paper": the metric relations read the configured models' stored maps; the other
        # chapters of that part compare demo models (or compute new maps) and stay in the embedded book
        NotebookSpec("notebooks/beyond_metric_relations.ipynb", "beyond_metric_relations.ipynb",
                     parameters={**base, "compared_models": models}),
    ]


def write_real_intro(record: Mapping[str, Any], root: Path, out_dir: Path) -> Path:
    """Write ``out_dir/intro.md``, the front page of a real-data book: which data and checkpoints the
    build used (:func:`vssl_helpers.report.runs.provenance_markdown`: media folders, manifests,
    checkpoint files with their sha256, skipped samples), what the chapters are, and the paper's
    findings (the section of the committed ``book/intro.md``)."""
    from .atomic import atomic_write
    from .report.runs import provenance_markdown

    committed = (root / "book" / "intro.md").read_text(encoding="utf-8")
    start = committed.find("## What the paper found")
    end = committed.find("\n## ", start + 1)
    paper = committed[start:end].strip() + "\n" if start >= 0 else ""
    models = ", ".join(m["name"] for m in record["models"])
    sets = " and ".join(t["label"] for t in record["testsets"])
    text = "\n".join([
        "<!-- vssl-template: vssl_helpers/pipeline.py -->",  # its "Edit this page" (vssl_helpers.sphinx_ext)
        "# vssl-companion on your data", "",
        "A research companion to *A Critical Assessment of Visual Sound Source Localization Models Including",
        "Negative Audio* (Juanola, Haro, Fuentes; ICASSP 2025), built with `vssl book` on real media:",
        f"the {sets} set(s), for the model(s) {models}.", "",
        provenance_markdown(record),
        "## How to read it", "",
        "1. *Metric definitions*: every metric with its formula, card and worked examples on small maps.",
        "2. *The extended test sets*: the negatives drawn for the sets above and their statistics.",
        "3. *Threshold analysis*: one page per model, where its universal threshold falls among the maxima "
        "of positive and negative maps.",
        "4. *Table I*: the models of this build on the sets above, beside the paper's printed table.",
        "5. *Qualitative figures*: maps at the universal threshold for each audio.",
        "6. *Model cards*: the seven evaluated models and how each is loaded.",
        "7. *Beyond the paper*: threshold-free audio sensitivity (AUROC), bootstrap confidence intervals of "
        "every Table I cell, and how the ranking depends on the threshold rule.", "",
        paper,
    ])
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / "intro.md"
    atomic_write(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))
    return path


def write_real_toc(specs: Sequence[NotebookSpec], root: Path, out_dir: Path, intro: Path | None = None) -> Path:
    """Write ``out_dir/_toc.yml``: the committed table of contents with its executed chapters
    replaced by those of ``specs`` (in ``out_dir``) and its threshold-analysis pages by one per
    spec of that template; hand-written pages (model cards, citation) are kept, and the front page
    is ``intro`` (the real-data front page of :func:`write_real_intro`) when given."""
    import yaml

    from .atomic import atomic_write

    toc = yaml.safe_load((root / "_toc.yml").read_text(encoding="utf-8"))
    generated = DEFAULT_OUT.as_posix() + "/"
    rel = out_dir.resolve().relative_to(root.resolve()).as_posix()
    if intro is not None:
        toc["root"] = intro.resolve().relative_to(root.resolve()).with_suffix("").as_posix()
    stems = {Path(s.output).stem: s for s in specs}
    threshold = [Path(s.output).stem for s in specs if s.template.endswith("threshold_analysis.ipynb")]
    def real_chapters(entries: list[Any]) -> list[Any]:
        nonlocal threshold
        chapters: list[Any] = []
        for chapter in entries:
            f = chapter.get("file", "")
            if not f.startswith(generated):
                chapters.append(chapter)
                continue
            stem = f[len(generated):]
            if stem.startswith("threshold_analysis"):
                if threshold:
                    entry: dict[str, Any] = {"file": f"{rel}/{threshold[0]}"}
                    if len(threshold) > 1:
                        entry["sections"] = [{"file": f"{rel}/{t}"} for t in threshold[1:]]
                    chapters.append(entry)
                    threshold = []
            elif stem in stems:
                chapters.append({"file": f"{rel}/{stem}"})
        return chapters

    if "parts" in toc:  # a book in parts ("Beyond the paper"): each part's chapters, empty parts dropped
        parts = [{**part, "chapters": real_chapters(part.get("chapters", []))} for part in toc["parts"]]
        toc["parts"] = [part for part in parts if part["chapters"]]
    else:
        toc["chapters"] = real_chapters(toc.get("chapters", []))
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / "_toc.yml"
    text = "# Generated by vssl_helpers.pipeline for a real-data book; edit the committed _toc.yml instead.\n"
    text += yaml.safe_dump(toc, sort_keys=False)
    atomic_write(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))
    return path


class NotebookExecutionError(RuntimeError):
    """A notebook failed under papermill; says which notebook, with which parameters, where."""

    def __init__(
        self,
        spec: NotebookSpec,
        parameters: Mapping[str, Any],
        *,
        cell_index: int | None = None,
        execution_count: int | None = None,
        ename: str | None = None,
        evalue: str | None = None,
        cell_source: str | None = None,
        failed_copy: Path | None = None,
    ) -> None:
        self.spec = spec
        self.parameters = dict(parameters)
        self.cell_index = cell_index
        self.execution_count = execution_count
        self.ename = ename
        self.evalue = evalue
        self.cell_source = cell_source
        self.failed_copy = failed_copy
        where = (
            f"in cell {cell_index} of the executed notebook (In [{execution_count}])"
            if cell_index is not None
            else "outside any cell"
        )
        lines = [
            f"notebook {spec.template} -> {spec.output} failed {where}",
            f"  parameters: {json.dumps(self.parameters, sort_keys=True)}",
            f"  error: {ename}: {evalue}",
        ]
        if cell_source:
            snippet = "\n".join("    | " + line for line in cell_source.splitlines()[:15])
            lines.append("  cell source:\n" + snippet)
        if failed_copy is not None:
            lines.append(f"  partially executed notebook: {failed_copy}")
        super().__init__("\n".join(lines))


class BookBuildError(RuntimeError):
    """``jupyter-book build`` failed (including warnings, which are errors under ``-W``)."""


def repo_root() -> Path:
    """Return the repository root: the current directory or a parent holding ``_config.yml``
    and ``notebooks/``, else the folder above this package (source checkout)."""
    for candidate in (Path.cwd(), *Path.cwd().parents):
        if (candidate / "_config.yml").is_file() and (candidate / "notebooks").is_dir():
            return candidate
    return Path(__file__).resolve().parent.parent


def _package_version() -> str:
    from vssl_helpers import __version__

    return __version__


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def package_source_hash() -> str:
    """SHA-256 over the package's own files (code and data), so that an edit to ``vssl_helpers``
    re-executes the notebooks even when the version number did not change."""
    pkg = Path(__file__).resolve().parent
    h = hashlib.sha256()
    for f in sorted(pkg.rglob("*")):
        if f.is_file() and "__pycache__" not in f.parts and f.suffix != ".pyc":
            h.update(str(f.relative_to(pkg)).encode() + b"\0" + f.read_bytes())
    return h.hexdigest()


def _kernel_name() -> str:
    """The project's kernel when installed (it runs the venv's Python), else ``python3``."""
    from jupyter_client.kernelspec import KernelSpecManager

    return PREFERRED_KERNEL if PREFERRED_KERNEL in KernelSpecManager().find_kernel_specs() else "python3"


def _provenance(spec: NotebookSpec, root: Path, quick: bool) -> dict[str, Any]:
    """What an executed notebook records under ``metadata.vssl`` (compared to decide reuse)."""
    return {
        "template": spec.template,
        "template_sha256": _sha256(root / spec.template),
        "parameters": spec.effective_parameters(quick),
        "title": spec.title,
        "package_version": _package_version(),
        "package_source_sha256": package_source_hash(),
        # only when the spec has inputs: the provenance of every other notebook stays as it was
        **({"inputs_sha256": {f: _sha256(root / f) for f in spec.inputs}} if spec.inputs else {}),
    }


def is_up_to_date(spec: NotebookSpec, root: Path, out_dir: Path, quick: bool = False) -> bool:
    """True when the executed notebook exists, is newer than its template and was made from the
    same template content, parameters and package version."""
    import nbformat

    output = out_dir / spec.output
    template = root / spec.template
    if not output.is_file() or output.stat().st_mtime <= template.stat().st_mtime:
        return False
    try:
        recorded = nbformat.read(output, as_version=4).metadata.get(METADATA_KEY, {})
    except Exception:  # unreadable or truncated: re-execute
        return False
    expected = _provenance(spec, root, quick)
    return all(recorded.get(key) == value for key, value in expected.items())


def _hide_injected_parameters(nb: Any) -> int:
    """Tag papermill's injected-parameters cell(s) ``remove-cell``; return how many were tagged."""
    count = 0
    for cell in nb.cells:
        tags = cell.metadata.setdefault("tags", [])
        if INJECTED_PARAMETERS_TAG in tags:
            if REMOVE_CELL_TAG not in tags:
                tags.append(REMOVE_CELL_TAG)
            count += 1
    return count


def _retitle(nb: Any, title: str) -> None:
    """Replace the first level-1 Markdown heading of ``nb`` by ``title`` (or add one on top)."""
    import nbformat

    for cell in nb.cells:
        if cell.cell_type != "markdown":
            continue
        lines = cell.source.split("\n")
        for i, line in enumerate(lines):
            if line.startswith("# "):
                lines[i] = f"# {title}"
                cell.source = "\n".join(lines)
                return
    nb.cells.insert(0, nbformat.v4.new_markdown_cell(f"# {title}"))


def execute_notebook(
    spec: NotebookSpec,
    *,
    root: Path,
    out_dir: Path,
    quick: bool = False,
    progress_bar: bool = False,
    kernel_name: str | None = None,
) -> Path:
    """Execute one template with papermill into ``out_dir/spec.output`` (atomic replace).

    The run happens in a temporary file beside the target, with the repository root as working
    directory. On success the injected-parameters cell is tagged ``remove-cell``, the provenance is
    recorded under ``metadata.vssl`` and the file is renamed into place. On failure the previous
    output (if any) is left untouched, the partial run is kept as ``<stem>.failed.ipynb`` and a
    :class:`NotebookExecutionError` is raised.
    """
    import nbformat
    import papermill
    from papermill.exceptions import PapermillExecutionError

    template = root / spec.template
    if not template.is_file():
        raise FileNotFoundError(f"notebook template not found: {template}")
    out_dir.mkdir(parents=True, exist_ok=True)
    target = out_dir / spec.output
    stem = Path(spec.output).stem
    failed_copy = out_dir / f"{stem}.failed.ipynb"
    params = spec.effective_parameters(quick)
    provenance = _provenance(spec, root, quick)  # before running: describes what was executed

    # A hidden name beside the target (same file system, so os.replace is atomic); created by
    # papermill itself, so it gets the usual permissions (mkstemp would make it 0600).
    tmp = out_dir / f".{stem}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp.ipynb"
    try:
        try:
            papermill.execute_notebook(
                str(template),
                str(tmp),
                parameters=params,
                kernel_name=kernel_name or _kernel_name(),
                language="python",
                cwd=str(root),
                progress_bar=progress_bar,
                execution_timeout=spec.timeout,
            )
        except PapermillExecutionError as exc:
            os.replace(tmp, failed_copy)
            raise NotebookExecutionError(
                spec,
                params,
                cell_index=exc.cell_index,
                execution_count=exc.exec_count,
                ename=exc.ename,
                evalue=exc.evalue,
                cell_source=exc.source,
                failed_copy=failed_copy,
            ) from exc
        except Exception as exc:  # kernel death, timeout, missing kernel, bad notebook, ...
            kept = None
            if tmp.is_file() and tmp.stat().st_size > 0:
                os.replace(tmp, failed_copy)
                kept = failed_copy
            raise NotebookExecutionError(
                spec, params, ename=type(exc).__name__, evalue=str(exc), failed_copy=kept
            ) from exc

        nb = nbformat.read(tmp, as_version=4)
        _hide_injected_parameters(nb)
        if spec.title:
            _retitle(nb, spec.title)
        nb.metadata[METADATA_KEY] = provenance
        nbformat.write(nb, tmp)
        os.replace(tmp, target)
        failed_copy.unlink(missing_ok=True)
    finally:
        tmp.unlink(missing_ok=True)
    return target


def execute_notebooks(
    specs: Sequence[NotebookSpec] | None = None,
    *,
    root: Path | None = None,
    out_dir: Path | None = None,
    quick: bool = False,
    force: bool = False,
    progress_bar: bool = False,
    log: Callable[[str], object] = print,
    executor: Any = None,
) -> list[Path]:
    """Execute the templates that are not up to date; return the paths of all executed notebooks.

    Every spec is attempted even when an earlier one fails (its output, and every other output, is
    left intact); failures are raised at the end, a single one as :class:`NotebookExecutionError`,
    several as an ``ExceptionGroup`` of them.

    ``executor`` (:mod:`vssl_helpers.scale`, e.g. a Dask cluster): the prepare steps run here, in
    order, then every notebook is one task of the executor (the workers must see the repository
    and the map store); chapters read the maps their prepare step stored, so they run in any order.
    """
    specs = list(NOTEBOOKS if specs is None else specs)
    root = (root or repo_root()).resolve()
    out_dir = (root / DEFAULT_OUT if out_dir is None else root / out_dir).resolve()
    outputs = [out_dir / s.output for s in specs]
    if len(set(outputs)) != len(outputs):
        raise ValueError("two notebook specs write the same output file")
    kernel = _kernel_name()
    failures: list[NotebookExecutionError] = []
    deferred: list[tuple[NotebookSpec, Path]] = []
    for spec, output in zip(specs, outputs):
        if not force and is_up_to_date(spec, root, out_dir, quick):
            log(f"[pipeline] up to date: {output.relative_to(root) if output.is_relative_to(root) else output}")
            continue
        start = time.perf_counter()
        if spec.prepare:
            log(f"[pipeline] preparing {spec.template}: {spec.prepare}")
            _run_prepare(spec.prepare, spec.effective_parameters(quick))
        if executor is not None:
            deferred.append((spec, output))
            continue
        log(f"[pipeline] executing {spec.template} (kernel {kernel}) ...")
        try:
            execute_notebook(
                spec, root=root, out_dir=out_dir, quick=quick, progress_bar=progress_bar, kernel_name=kernel
            )
        except NotebookExecutionError as exc:
            log(f"[pipeline] FAILED: {spec.template}")
            failures.append(exc)
            continue
        log(f"[pipeline]   -> {output} ({time.perf_counter() - start:.1f} s)")
    if deferred:
        log(f"[pipeline] executing {len(deferred)} notebooks on the {executor.name} executor (kernel {kernel}) ...")
        calls = [{"spec": spec, "root": root, "out_dir": out_dir, "quick": quick, "kernel_name": kernel}
                 for spec, _ in deferred]
        for (spec, output), res in zip(deferred, executor.run_calls(execute_notebook, calls, progress=progress_bar)):
            if isinstance(res, NotebookExecutionError):
                log(f"[pipeline] FAILED: {spec.template}")
                failures.append(res)
            elif isinstance(res, BaseException):
                raise res
            else:
                log(f"[pipeline]   -> {output}")
    if len(failures) == 1:
        raise failures[0]
    if failures:
        raise ExceptionGroup(f"{len(failures)} notebooks failed", failures)
    return outputs


def _run_prepare(target: str, params: Mapping[str, Any]) -> None:
    import importlib

    module, _, func = target.partition(":")
    getattr(importlib.import_module(module), func)(**params)


def _toc_files(entry: Any) -> Iterator[str]:
    """Yield every ``file``/``root`` entry of a parsed ``_toc.yml``."""
    if isinstance(entry, Mapping):
        for key, value in entry.items():
            if key in ("file", "root") and isinstance(value, str):
                yield value
            else:
                yield from _toc_files(value)
    elif isinstance(entry, list):
        for item in entry:
            yield from _toc_files(item)


def check_toc(notebooks: Iterable[Path], root: Path, toc_path: Path | None = None) -> None:
    """Raise ``ValueError`` if an executed notebook is not listed in ``_toc.yml`` (or ``toc_path``):
    Jupyter Book would silently leave it out of the book."""
    import yaml

    toc = yaml.safe_load((toc_path or root / "_toc.yml").read_text(encoding="utf-8"))
    listed = {str(Path(f).with_suffix("")) if Path(f).suffix in (".ipynb", ".md") else f for f in _toc_files(toc)}
    missing = []
    for nb in notebooks:
        rel = nb.resolve().relative_to(root) if nb.resolve().is_relative_to(root) else nb
        if str(rel.with_suffix("")) not in listed:
            missing.append(str(rel.with_suffix("")))
    if missing:
        raise ValueError(
            "executed notebooks missing from _toc.yml (the book reads book/generated/): " + ", ".join(missing)
        )


def _jupyter_book_command() -> list[str]:
    """``jupyter-book`` of the running environment (the script beside ``sys.executable``)."""
    bindir = Path(sys.executable).parent
    for name in ("jupyter-book", "jupyter-book.exe"):
        if (bindir / name).is_file():
            return [str(bindir / name)]
    return [sys.executable, "-c", "from jupyter_book.cli.main import main; main()"]


def build_book(
    root: Path | None = None, *, clean: bool = False, toc: Path | None = None, path_output: Path | None = None,
) -> Path:
    """Build the HTML book with warnings as errors; return ``<output>/_build/html/index.html``.

    Runs ``jupyter-book build <root> --builder html -W --keep-going`` in a subprocess (Sphinx patches
    docutils globals, so it is not run in-process), with another table of contents (``toc``) and
    output folder (``path_output``, default the root) when given. ``clean`` removes the build folder
    first.
    """
    root = (root or repo_root()).resolve()
    build_dir = (root if path_output is None else root / path_output) / "_build"
    if clean and build_dir.exists():
        shutil.rmtree(build_dir)
    cmd = [*_jupyter_book_command(), "build", str(root), "--builder", "html", "-W", "--keep-going"]
    if toc is not None:
        cmd += ["--toc", str(toc)]
    if path_output is not None:
        cmd += ["--path-output", str(root / path_output)]
    result = subprocess.run(cmd, cwd=root, check=False)
    if result.returncode != 0:
        raise BookBuildError(
            f"jupyter-book build failed with exit code {result.returncode} (warnings count as errors; "
            "see the messages above)"
        )
    index = build_dir / "html" / "index.html"
    if not index.is_file():
        raise BookBuildError(f"jupyter-book build succeeded but {index} is missing")
    return index


def add_book_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of a book run that ``vssl book`` passes to :func:`run_book`."""
    parser.add_argument(
        "--out",
        type=Path,
        default=None,
        help="folder for the executed notebooks, relative to the repository root (default: book/generated, "
        "which the committed _toc.yml reads; book/real for a --config book)",
    )
    parser.add_argument("--quick", action="store_true", help="use each notebook's quick (small, fast) parameters")
    parser.add_argument("--force", action="store_true", help="re-execute notebooks even when up to date")
    parser.add_argument("--clean", action="store_true", help="remove the build folder before building the book")
    parser.add_argument("--no-build", action="store_true", help="only execute the notebooks; do not build the site")
    parser.add_argument(
        "--progress",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="progress bars: --no-progress silences every bar (papermill's, the prepare steps' training and "
        "map bars, the notebooks'); default: live bars on a terminal, a few lines per loop in a log",
    )
    parser.add_argument("--scheduler", metavar="ADDRESS", default=None,
                        help="execute the notebooks on this Dask cluster, one task per notebook (tcp://host:8786; "
                        "the workers must see the repository and the map store)")
    parser.add_argument("--dask-local", type=int, metavar="N", default=None,
                        help="execute the notebooks on a Dask LocalCluster of N worker processes")
    parser.add_argument("--jobs", type=int, metavar="N", default=DEFAULTS.book_jobs,
                        help=f"notebooks executed at a time on this machine, after every prepare step (default "
                        f"{DEFAULTS.book_jobs}; 1: one after the other)")


def run_book(
    *,
    config: Path | None = None,
    out: Path | None = None,
    build: bool = True,
    quick: bool = False,
    force: bool = False,
    clean: bool = False,
    progress: bool | None = None,
    scheduler: str | None = None,
    dask_local: int | None = None,
    jobs: int = 1,
) -> int:
    """Execute the chapters (the embedded default, or the real-data book of ``config``) and build
    the book; print where the site is. Returns the exit status (errors are printed, not raised):
    0 success; 2 a real-data book whose configuration, media or checkpoints fail the pre-flight
    check (:func:`vssl_helpers.report.runs.preflight`, before any notebook runs), printed as
    ``vssl: error: ...``; 1 a notebook or the site build failed (``[pipeline] ...``).
    ``scheduler`` / ``dask_local``: the notebooks run on that Dask cluster, one task each
    (:func:`execute_notebooks`); the prepare steps run here first. ``jobs > 1`` (no cluster): the
    notebooks run that many at a time on this machine, after every prepare step."""
    from .progress import switched

    # --no-progress: off for the prepare steps' bars and the notebook kernels' (they inherit it)
    with switched(False if progress is False else None):
        if scheduler or dask_local is not None:
            from .scale import make_executor

            try:
                executor = make_executor(scheduler, dask_local)
            except ValueError as exc:
                print(f"vssl: error: {exc}", file=sys.stderr)
                return 2
            with executor:  # type: ignore[union-attr]
                return _run_book(config, out, build, quick, force, clean, progress, executor)
        if jobs < 1:
            print(f"vssl: error: --jobs: expected >= 1, got {jobs}", file=sys.stderr)
            return 2
        if jobs > 1:
            from .scale import LocalExecutor

            return _run_book(config, out, build, quick, force, clean, progress, LocalExecutor(processes=jobs))
        return _run_book(config, out, build, quick, force, clean, progress)


def _run_book(
    config: Path | None, out: Path | None, build: bool, quick: bool, force: bool, clean: bool, progress: bool | None,
    executor: Any = None,
) -> int:
    root = repo_root()
    progress = sys.stderr.isatty() if progress is None else progress
    start = time.perf_counter()
    if config is not None:
        # everything a real-data book reads is checked before the first notebook: bad input exits
        # with status 2 and one "vssl: error:" line (as every `vssl` command); status 1 is kept for
        # failures while notebooks run or the site is built
        from .report.runs import BookConfigError, preflight

        try:
            record = preflight(config)
        except BookConfigError as exc:
            print(f"vssl: error: {exc}", file=sys.stderr)
            return 2
    try:
        if config is None:
            specs, out_dir, toc, path_output = NOTEBOOKS, out or DEFAULT_OUT, None, None
        else:
            specs, out_dir = real_book_specs(config), out or REAL_OUT
            intro = write_real_intro(record, root, root / out_dir)
            toc, path_output = write_real_toc(specs, root, root / out_dir, intro), REAL_BUILD
        if build:  # fail before executing anything if the book would miss a chapter
            check_toc([root / out_dir / spec.output for spec in specs], root, toc)
        execute_notebooks(specs, root=root, out_dir=out_dir, quick=quick, force=force, progress_bar=progress,
                          executor=executor)
        if build:
            index = build_book(root, clean=clean, toc=toc, path_output=path_output)
    except NotebookExecutionError as exc:
        print(f"[pipeline] {exc}", file=sys.stderr)
        return 1
    except ExceptionGroup as group:
        for exc in group.exceptions:
            print(f"[pipeline] {exc}", file=sys.stderr)
        return 1
    except (BookBuildError, ValueError, FileNotFoundError) as exc:  # BookConfigError is a ValueError
        print(f"[pipeline] {exc}", file=sys.stderr)
        return 1
    print(f"[pipeline] done in {time.perf_counter() - start:.1f} s")
    if build:
        print(index)
    return 0
