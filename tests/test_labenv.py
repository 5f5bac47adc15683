"""The lab's kernel and widget front end (rnncourse.labenv), and the notebooks' kernel name."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from rnncourse import labenv

ROOT = Path(__file__).resolve().parents[1]


def test_this_environment_is_ready_for_the_lab():
    # The suite runs in the course's environment: its python3 kernel and widgets must fit.
    assert labenv.kernel_problem() is None
    assert labenv.widgets_problem() is None
    assert labenv.frontend_version() != "not found"


def test_a_python3_kernel_from_elsewhere_is_reported(tmp_path, monkeypatch):
    spec = tmp_path / "kernels" / "python3"
    spec.mkdir(parents=True)
    (spec / "kernel.json").write_text(json.dumps({
        "argv": ["/opt/other/bin/python", "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "Python 3", "language": "python"}))
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path))  # searched before every other place
    problem = labenv.kernel_problem()
    assert problem and "/opt/other/bin/python" in problem and "ipykernel install" in problem


def test_a_missing_kernel_is_reported():
    assert "no 'no-such-kernel' kernel" in labenv.kernel_problem("no-such-kernel")


@pytest.mark.parametrize("path", sorted(str(p.relative_to(ROOT)) for folder in ("solutions", "notebooks")
                                        for p in (ROOT / folder).glob("*/*.ipynb")))
def test_notebooks_use_the_standard_python3_kernel(path):
    # "python3" is what JupyterLab, Colab and nbgrader start without asking; labenv
    # checks that it is the course's environment. Any other name makes JupyterLab ask.
    kernelspec = json.loads((ROOT / path).read_text())["metadata"].get("kernelspec", {})
    assert kernelspec.get("name") == "python3", f"{path} asks for kernel {kernelspec.get('name')!r}"
