"""Run defaults: the one place where the default sizes, seeds, model lists and engine settings live.

The command line (:mod:`vssl_helpers.cli`), the test-set loader (:mod:`vssl_helpers.inputs`), the
book's runs and configuration (:mod:`vssl_helpers.report.runs`), the notebook pipeline
(:mod:`vssl_helpers.pipeline`), the demo models' training (:mod:`vssl_helpers.models.training`) and
:func:`vssl_helpers.engine.evaluate` read their defaults from :data:`DEFAULTS`. The notebooks'
``parameters`` cells must stay literal assignments (papermill injects its values after them), so they
repeat these values; a test (``tests/test_defaults.py``) reads every template and checks that they
agree.

Where a default legitimately differs between two uses, both are named here: the command line and
the embedded test set use :attr:`RunDefaults.n_images` synthetic test images, the book's result
chapters :attr:`RunDefaults.book_images` (a fresh book must stay within minutes on two cores; the
500-image figures of the demo models come from the committed multi-seed study).

This module imports nothing heavy, so that ``vssl --help`` stays fast.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Any

__all__ = ["RunDefaults", "DEFAULTS", "QUICK"]


@dataclass(frozen=True)
class RunDefaults:
    """Default settings of a run (command line, book, notebooks, in-process evaluation).

    Attributes:
        n_images: synthetic test images of ``vssl evaluate --testset synthetic``, of the embedded
            test set (:data:`vssl_helpers.embedded.DEFAULT_TEST`) and of the dataset-extension chapter.
        book_images: synthetic test images of the book's result chapters (embedded benchmark,
            threshold analyses, Table I, qualitative figures, compatibility effects).
        n_seeds: negative seeds per sample (the paper: 10).
        manifest_seed: seed of the negatives manifest's counter-based draws.
        model_seed: seed of the demo models (training and seeded random weights).
        train_steps: training steps of the trained demo models.
        warmup_steps: steps of the training warm-up score (at most a third of a shorter run).
        n_train_images: training scenes of the trained demo models.
        train_batch_size: training batch size of the demo models.
        models: the demo models, in the book's order.
        threshold_models: models with a threshold-analysis chapter each (the trained demo models and
            the audio-blind saliency baseline; random weights and the oracle have nothing to show).
        reference_models: models shown in Table I but left out of its best/second marks.
        compat_models: models of the compatibility-effects chapter.
        book_jobs: notebooks ``vssl book`` executes at a time (after every prepare step): two fill
            the two cores of a small machine, since each mostly waits for its own kernel.
        own_model_models: the "Evaluate your own model" chapter's plugin (a spec relative to the
            repository root) and the demo models it is compared with.
        device: engine device of the command line and of a book configuration (``auto``: a GPU if
            present).
        eval_device: engine device of :func:`vssl_helpers.engine.evaluate` called from Python (the
            embedded book's runs): the CPU, so that a notebook's numbers do not depend on whether a GPU
            happens to be present.
        batch_size: images per engine batch.
        shard_size: samples per stored shard of the map store.
        workers: DataLoader workers decoding media.
        dtype: encoder precision.
        on_missing: real sets, samples with missing media: ``raise`` or ``skip``.
    """

    n_images: int = 500
    book_images: int = 200
    n_seeds: int = 10
    manifest_seed: int = 0
    model_seed: int = 0
    train_steps: int = 600
    warmup_steps: int = 200
    n_train_images: int = 4000
    train_batch_size: int = 64
    models: tuple[str, ...] = ("demo-ezvsl", "demo-lvs", "demo-negaware", "demo-saliency", "demo-random", "demo-oracle")
    threshold_models: tuple[str, ...] = ("demo-ezvsl", "demo-lvs", "demo-negaware", "demo-saliency")
    reference_models: tuple[str, ...] = ("demo-oracle",)
    compat_models: tuple[str, ...] = ("demo-ezvsl", "demo-lvs")
    own_model_models: tuple[str, ...] = ("examples/my_model.py:factory", "demo-saliency", "demo-ezvsl", "demo-negaware")
    device: str = "auto"
    eval_device: str = "cpu"
    batch_size: int = 64
    shard_size: int = 512
    workers: int = 0
    dtype: str = "float32"
    on_missing: str = "raise"
    book_jobs: int = 2

    def book_parameters(self) -> dict[str, Any]:
        """The papermill parameters every result chapter of the embedded book shares (same test sets,
        seeds and trained models, so the map store computes each model's maps once for all of them)."""
        return {"n_test_images": self.book_images, "n_seeds": self.n_seeds, "train_steps": self.train_steps,
                "n_train_images": self.n_train_images, "model_seed": self.model_seed}

    def to_dict(self) -> dict[str, Any]:
        """Every field, tuples as lists (JSON-ready)."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}


DEFAULTS = RunDefaults()
"""The defaults of every run."""

QUICK = replace(DEFAULTS, n_images=16, book_images=16, n_seeds=2, train_steps=6, n_train_images=64)
"""The settings of a ``--quick`` book build (small and fast: a smoke test of the whole pipeline)."""
