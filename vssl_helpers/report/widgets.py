"""Interactive views for JupyterLab that also render statically in the book.

Each function returns an ``ipywidgets`` container (controls and an ``Output`` widget). The view is
rendered once when the container is created and written into the ``Output`` widget's ``outputs``
trait directly (a PNG and an HTML table), so the executed notebook stores the widgets *and* the
initial view in its widget state, which the book's vendored widget manager renders without a kernel
(the controls are then inert; the view shows the initial setting). In JupyterLab every change of a
control re-renders the view. (``ipywidgets.interactive``, which captures the view's display calls in
the ``Output`` widget and clears it first, intermittently hung papermill/nbclient 0.11 at that cell;
setting ``outputs`` needs no output capture.)
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

import numpy as np
import torch

from .. import metrics as M

if TYPE_CHECKING:
    from ..engine import EvalResult

__all__ = ["threshold_explorer"]


def threshold_explorer(
    result: EvalResult,
    images: Mapping[int, np.ndarray],
    seed_index: int = 0,
    steps: int = 100,
):
    """A threshold slider and a sample selector over one model's stored maps.

    Moving the slider binarises the maps of the chosen sample (positive, silence, and the noise and
    off-screen negatives of seed ``seed_index``) at that threshold and shows them over the image, with
    the sample's IoU (positive) and pIA (negatives) at that threshold, next to the values at the model's
    universal threshold.

    Args:
        result: an :class:`~vssl_helpers.engine.EvalResult` (maps in manifest order, GT, threshold).
        images: ``{manifest row: H × W × 3 image}`` of the samples offered in the selector (the image the
            model saw, ``preprocessing.image_transform.view``; drawn over the 224 × 224 GT frame).
        steps: slider positions between the lowest and the highest per-sample maximum of any audio type.

    Returns:
        an ``ipywidgets.VBox`` of the slider, the sample selector and the ``Output`` view.
    """
    import base64
    import io

    import ipywidgets as widgets
    import matplotlib.pyplot as plt
    import pandas as pd

    from .figures import plot_threshold_view
    from .runs import sample_maps

    lo = min(float(torch.as_tensor(v).min()) for v in result.maxima.values())
    hi = max(float(torch.as_tensor(v).max()) for v in result.maxima.values())
    t0 = float(result.threshold.value)
    lo, hi = min(lo, t0), max(hi, t0)
    step = (hi - lo) / max(1, steps) if hi > lo else 0.01
    slider = widgets.FloatSlider(value=t0, min=lo, max=hi + step, step=step, description="threshold",
                                 readout_format=".3f", continuous_update=False,
                                 layout=widgets.Layout(width="480px"))
    rows = list(images)
    selector = widgets.Dropdown(options=[(f"sample {r} ({result.provenance.get('manifest', '')})", r) for r in rows],
                                value=rows[0], description="sample")
    out = widgets.Output()

    def render(threshold: float, row: int) -> tuple[dict, ...]:
        maps = sample_maps(result, row, seed_index)
        gt = result.gt[row]
        values = {}
        for t, label in ((threshold, "slider"), (t0, "universal")):
            values[f"{label} ({t:.3f})"] = {
                name: (100 * M.ciou(m.unsqueeze(0), gt.unsqueeze(0), t, empty_gt="zero").item() if name == "positive"
                       else 100 * M.pia(m.unsqueeze(0), t).item())
                for name, m in maps.items()
            }
        fig = plot_threshold_view(images[row], gt, maps, threshold)
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=90)
        plt.close(fig)
        table = pd.DataFrame(values).rename(index=lambda k: "IoU positive (%)" if k == "positive" else f"pIA {k} (%)")
        return (
            {"output_type": "display_data", "metadata": {},
             "data": {"image/png": base64.b64encode(buf.getvalue()).decode("ascii"), "text/plain": f"<maps at {threshold:.3f}>"}},
            {"output_type": "display_data", "metadata": {},
             "data": {"text/html": table.round(2).to_html(), "text/plain": table.round(2).to_string()}},
        )

    def update(_change: object = None) -> None:
        out.outputs = render(slider.value, selector.value)

    slider.observe(update, names="value")
    selector.observe(update, names="value")
    update()
    box = widgets.VBox([slider, selector, out])
    box.render = render  # the view function, for tests and scripted use
    return box
