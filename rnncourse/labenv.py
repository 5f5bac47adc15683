"""Is this environment's JupyterLab ready for the course? ``python -m rnncourse.labenv``

``course.py lab`` runs it before starting JupyterLab. Two things go wrong in widget
courses without any Python error, and only show in the browser:

* the notebook runs in some other Python (a ``python3`` kernelspec elsewhere on the
  Jupyter path wins), so ``import rnncourse`` fails or imports a stale copy;
* the widget front end (``jupyterlab_widgets``) does not match the kernel's
  ``ipywidgets``, and every exploration shows "Error displaying widget".

The notebooks keep the standard ``python3`` kernel name (it is what Colab and an
nbgrader server have); this module checks that the name resolves to this
environment's interpreter instead of registering a course-specific kernel.
"""
from __future__ import annotations

import json
import sys
from importlib.metadata import PackageNotFoundError, requires, version
from pathlib import Path

# Names jupyter_client replaces with the server's own interpreter when it starts a kernel.
_SERVER_PYTHON = {"python", "python3", f"python{sys.version_info[0]}.{sys.version_info[1]}"}


def kernel_problem(kernel_name: str = "python3") -> str | None:
    """Why the ``kernel_name`` kernel would not run this interpreter, or None if it would."""
    from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel

    try:
        spec = KernelSpecManager().get_kernel_spec(kernel_name)
    except NoSuchKernel:
        return f"no {kernel_name!r} kernel is installed; run: python -m ipykernel install --sys-prefix"
    exe = spec.argv[0]
    # Compare the paths as written: a venv's python is a symlink to the base
    # interpreter, and resolving it would make any venv look like any other.
    if exe in _SERVER_PYTHON or Path(exe).absolute() == Path(sys.executable).absolute():
        return None
    return (f"the {kernel_name!r} kernel ({spec.resource_dir}) runs {exe}, not {sys.executable}; "
            "remove that kernelspec or run: python -m ipykernel install --sys-prefix")


def widgets_problem() -> str | None:
    """Why the widget front end would not match the kernel's ipywidgets, or None."""
    from packaging.requirements import Requirement

    try:
        needed = [Requirement(r) for r in requires("ipywidgets") or []]
        wanted = next(r for r in needed if r.name.replace("_", "-") == "jupyterlab-widgets")
        have = version("jupyterlab_widgets")
    except PackageNotFoundError as missing:
        return f"{missing.name} is not installed; run: python3 course.py setup"
    except StopIteration:
        return None  # an ipywidgets that names no front end: nothing to compare
    if not wanted.specifier.contains(have, prereleases=True):
        return (f"ipywidgets {version('ipywidgets')} needs jupyterlab_widgets{wanted.specifier}, "
                f"this environment has {have}; run: python3 course.py setup")
    return None


def frontend_version() -> str:
    """Version of the widget manager JupyterLab loads from this environment."""
    pkg = Path(sys.prefix, "share/jupyter/labextensions/@jupyter-widgets/jupyterlab-manager/package.json")
    try:
        return json.loads(pkg.read_text())["version"]
    except (OSError, ValueError, KeyError):
        return "not found"


def main() -> int:
    problems = [p for p in (kernel_problem(), widgets_problem()) if p]
    print(f"Kernel: python3 -> {sys.executable}")
    try:
        print(f"Widgets: ipywidgets {version('ipywidgets')}, jupyterlab_widgets "
              f"{version('jupyterlab_widgets')} (front end {frontend_version()})")
    except PackageNotFoundError:
        pass
    for problem in problems:
        print(f"WARNING: {problem}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
