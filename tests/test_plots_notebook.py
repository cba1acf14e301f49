"""Plot helpers in a real kernel: the figure appears whatever the caller does with the return value.

One small notebook runs in an IPython kernel (nbclient): ``plot_dataset(scan);`` (result
suppressed), a bare ``plot_dataset(scan)`` with and without matplotlib-inline's Figure formatter,
``show=False``, ``Reconstruction.plot`` and a figure made by a widget-style callback outside a cell.
"""
from __future__ import annotations

import nbformat
import pytest
from nbclient import NotebookClient

from ptycho_nb.plots import FIGURE_TEXT

SETUP = """\
import ptycho_nb
from types import SimpleNamespace
import numpy as np
from ptycho_nb.plots import plot_dataset, plot_reconstruction
from ptycho_nb.workflows.inference import Reconstruction
scan = ptycho_nb.simulate(N=32, n_positions=12, object_shape=(64, 64), seed=0)
"""
CELLS = [
    SETUP,
    "plot_dataset(scan);",                          # 1: suppressed result: still shown once
    "plot_dataset(scan)",                           # 2: no inline formatter: text result + figure
    "fig = plot_dataset(scan, show=False)",         # 3: explicitly not shown
    "for i in range(2):\n    plot_dataset(scan, index=i)",   # 4: two figures, in order
    # 5: Reconstruction.plot() goes through the same path (a minimal stand-in for infer's output)
    "recon = SimpleNamespace(object=scan.object[:40, :40], offset=(0, 0),\n"
    "                        weight=np.ones((40, 40)), truth=scan.object)\n"
    "Reconstruction.plot(recon);",
    # 6: matplotlib-inline's Figure formatter: the displayhook's image is the only one
    "%matplotlib inline\nplot_dataset(scan)",
]


def _images(cell) -> list[str]:
    return [o["data"].get("text/plain", "") for o in cell.outputs
            if o.get("output_type") in ("display_data", "execute_result") and "image/png" in o["data"]]


def test_plot_helpers_show_their_figure_in_a_kernel(tmp_path):
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in CELLS])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    NotebookClient(nb, timeout=180, kernel_name="python3",
                   resources={"metadata": {"path": str(tmp_path)}}).execute()
    c = nb.cells
    dataset = FIGURE_TEXT.format("dataset")
    assert _images(c[1]) == [dataset]
    assert _images(c[2]) == [dataset]
    assert [o["output_type"] for o in c[2].outputs] == ["execute_result", "display_data"]
    assert _images(c[3]) == [] and c[3].outputs == [], [c[i].outputs for i in (2, 3)]
    assert _images(c[4]) == [dataset, dataset]
    assert _images(c[5]) == [FIGURE_TEXT.format("reconstruction")]
    assert [o["output_type"] for o in c[6].outputs] == ["execute_result"]
    assert _images(c[6])[0].startswith("<Figure size")
