#!/usr/bin/env python3
"""Set up the course environment and open the course, or run its tests.

    python3 course.py lab      # set up (first time only) and open JupyterLab on the course
    python3 course.py test     # set up (first time only) and run the whole test suite
    python3 course.py release  # regenerate notebooks/ from solutions/ (instructors)
    python3 course.py setup    # only set up

Set-up makes an isolated virtual environment in ``.venv/`` next to this file and
installs the ``rnncourse`` package into it (editable) with JupyterLab, nbgrader,
ipywidgets, matplotlib, numpy, torch and the test tools. It is idempotent: a
second run reuses the environment and installs again only when ``pyproject.toml``
changed. Extra arguments after ``test`` go to pytest (``python3 course.py test -k lstm``),
after ``lab`` to JupyterLab.

Only the standard library is used here, so any Python 3.10+ with ``venv`` runs it.
"""
from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
STAMP = VENV / ".rnncourse-installed"


def venv_python() -> Path:
    sub = "Scripts/python.exe" if os.name == "nt" else "bin/python"
    return VENV / sub


def wanted_stamp() -> str:
    # Reinstall when the dependency spec or the interpreter changes, not otherwise.
    spec = (ROOT / "pyproject.toml").read_bytes()
    return hashlib.sha256(spec + sys.version.encode()).hexdigest()


def run(cmd: list, **kw) -> None:
    print("+", " ".join(str(c) for c in cmd), flush=True)
    subprocess.run([str(c) for c in cmd], check=True, **kw)


def setup() -> Path:
    if sys.version_info < (3, 10):
        sys.exit(f"rnncourse needs Python 3.10 or newer; this is {sys.version.split()[0]}.")
    py = venv_python()
    if not py.exists():
        run([sys.executable, "-m", "venv", VENV])
    if STAMP.exists() and STAMP.read_text() == wanted_stamp():
        print(f"Environment up to date: {VENV}", flush=True)
        return py
    run([py, "-m", "pip", "install", "--quiet", "--upgrade", "pip"])
    run([py, "-m", "pip", "install", "--quiet", "-e", f"{ROOT}[test]"])
    STAMP.write_text(wanted_stamp())
    print(f"Environment ready: {VENV}", flush=True)
    return py


def lab_command(py: Path, root_dir: Path = ROOT, extra: list = ()) -> list:
    # Learners land in notebooks/; solutions/ stays one click away in the file browser.
    # tests/test_browser.py starts the same command on a temporary copy of the course.
    # Jupyter refuses to start as root unless told; containers and CI often are root.
    as_root = ["--allow-root"] if getattr(os, "geteuid", lambda: 1)() == 0 else []
    return [py, "-m", "jupyter", "lab", f"--ServerApp.root_dir={root_dir}",
            "--LabApp.default_url=/lab/tree/notebooks", *as_root, *extra]


def lab(py: Path, extra: list) -> int:
    # Report (and warn about) the kernel and the widget front end before starting:
    # a mismatch shows up in the browser as "Error displaying widget".
    subprocess.call([str(py), "-m", "rnncourse.labenv"], cwd=ROOT)
    cmd = lab_command(py, ROOT, extra)
    print("+", " ".join(str(c) for c in cmd), flush=True)
    print("Open the http://localhost:...?token=... address JupyterLab prints below "
          "(it opens in your browser by itself when it can); it lands in notebooks/. "
          "Stop JupyterLab with Ctrl+C.", flush=True)
    proc = subprocess.Popen([str(c) for c in cmd], cwd=ROOT)
    while True:
        try:
            return proc.wait()
        except KeyboardInterrupt:
            # Ctrl+C reaches JupyterLab too: let it confirm and shut its kernels down
            # (subprocess.call would kill it outright and print a traceback here).
            continue


def test(py: Path, extra: list) -> int:
    cmd = [py, "-m", "pytest", *extra]
    print("+", " ".join(str(c) for c in cmd), flush=True)
    return subprocess.call([str(c) for c in cmd], cwd=ROOT)


def release(py: Path, extra: list) -> int:
    return subprocess.call([str(py), str(ROOT / "tools" / "release.py"), *extra], cwd=ROOT)


def main(argv: list) -> int:
    if not argv or argv[0] not in {"lab", "test", "setup", "release"}:
        print(__doc__)
        return 2
    py = setup()
    if argv[0] == "lab":
        return lab(py, argv[1:])
    if argv[0] == "test":
        return test(py, argv[1:])
    if argv[0] == "release":
        return release(py, argv[1:])
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
