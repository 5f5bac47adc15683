"""Notebooks the browser test writes for itself.

``working()`` uses the pattern the lessons use (a slider driving a matplotlib figure
in an Output widget) and the course's training loop with its progress bar; it
passes only if JupyterLab's widget front end matches the kernel's ipywidgets.
``broken()`` holds each failure the test must catch, so a test of the test can
prove the detectors see them.
"""
from __future__ import annotations

import nbformat

EXPLORATION_TAG = "exploration"
_KERNEL = {"name": "python3", "display_name": "Python 3 (ipykernel)", "language": "python"}


def _notebook(*cells) -> nbformat.NotebookNode:
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = dict(_KERNEL)
    nb.cells = list(cells)
    return nb


def _code(source: str, exploration: bool = False):
    metadata = {"tags": [EXPLORATION_TAG]} if exploration else {}
    return nbformat.v4.new_code_cell(source, metadata=metadata)


def working() -> nbformat.NotebookNode:
    return _notebook(
        _code("import sys\nprint(sys.prefix)"),  # cell 0: which environment the kernel runs in
        _code(  # cell 1: rnncourse.train.fit with its progress bar forced on
            "import torch\nfrom rnncourse.train import fit\n"
            "model = torch.nn.Linear(2, 1)\n"
            "batches = [(torch.randn(8, 2), torch.randn(8, 1)) for _ in range(4)]\n"
            "history = fit(model, batches, torch.nn.functional.mse_loss,\n"
            "              torch.optim.SGD(model.parameters(), lr=0.1), epochs=2, progress=True)\n"
            "print(len(history.losses), 'steps')"),
        _code(  # cell 2: the exploration
            "import ipywidgets as widgets\nimport matplotlib.pyplot as plt\n"
            "import numpy as np\nfrom IPython.display import display\n\n"
            "slider = widgets.IntSlider(value=2, min=1, max=5, description='frequency')\n"
            "out = widgets.Output()\n\n"
            "def draw(change=None):\n"
            "    with out:\n"
            "        out.clear_output(wait=True)\n"
            "        t = np.linspace(0, 1, 200)\n"
            "        fig, ax = plt.subplots(figsize=(4, 2.5))\n"
            "        ax.plot(t, np.sin(2 * np.pi * slider.value * t))\n"
            "        ax.set(xlabel='time (s)', ylabel='amplitude', title=f'{slider.value} Hz')\n"
            "        plt.show()\n\n"
            "slider.observe(draw, names='value')\n"
            "draw()\n"
            "display(widgets.VBox([slider, out]))", exploration=True),
    )


# Cells of broken(), by what they break.
BROKEN_MISSING_MODEL, BROKEN_VERSION, BROKEN_CALLBACK, BROKEN_UNWIRED, BROKEN_RAISES = range(5)


def broken() -> nbformat.NotebookNode:
    return _notebook(
        # a widget view whose model the kernel never created: "model not found"
        _code("import ipywidgets as widgets\nfrom IPython.display import display\n"
              "display({'application/vnd.jupyter.widget-view+json': {'model_id': 'f' * 32,"
              " 'version_major': 2, 'version_minor': 0}}, raw=True)"),
        # a widget asking for a front end this JupyterLab does not have: the mismatch
        _code("from traitlets import Unicode\n\n"
              "class FromTheFuture(widgets.IntSlider):\n"
              "    _model_module_version = Unicode('99.0.0').tag(sync=True)\n"
              "    _view_module_version = Unicode('99.0.0').tag(sync=True)\n\n"
              "FromTheFuture()"),
        # an exploration whose callback raises when the slider moves
        _code("s1, o1 = widgets.IntSlider(1), widgets.Output()\n"
              "def fail(change):\n    with o1:\n        raise ValueError('broken callback')\n"
              "s1.observe(fail, 'value')\nwith o1:\n    print('drawn once')\n"
              "display(widgets.VBox([s1, o1]))", exploration=True),
        # an exploration whose slider is wired to nothing
        _code("s2, o2 = widgets.IntSlider(1), widgets.Output()\nwith o2:\n    print('never redrawn')\n"
              "display(widgets.VBox([s2, o2]))", exploration=True),
        _code("raise RuntimeError('a cell that fails')"),
    )
