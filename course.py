#!/usr/bin/env python3
"""Set up the course environment and open the course, or run its tests.

    python3 course.py lab      # set up (first time only) and open JupyterLab on the course
    python3 course.py explore  # set up (first time only) and open the explorer's gallery (Voilà)
    python3 course.py test     # set up (first time only) and run the whole test suite
    python3 course.py release  # regenerate notebooks/ from solutions/ (instructors)
    python3 course.py setup    # only set up

Set-up makes an isolated virtual environment in ``.venv/`` next to this file and
installs the ``rnncourse`` package into it (editable) with JupyterLab, nbgrader,
Voilà, ipywidgets, matplotlib, numpy, torch and the test tools. It is idempotent: a
second run reuses the environment and installs again only when ``pyproject.toml``
(or RNNCOURSE_TORCH) changed. Extra arguments after ``test`` go to pytest
(``python3 course.py test -k lstm``), after ``lab`` to JupyterLab, after
``explore`` to Voilà.

    RNNCOURSE_TORCH=cpu python3 course.py lab   # Linux without an NVIDIA GPU: CPU-only torch

torch from the package index is, on Linux x86-64, the CUDA build, which pulls
about a dozen nvidia-* wheels (several GB) even where there is no GPU.
RNNCOURSE_TORCH=cpu installs the same torch version from PyTorch's CPU-only
index (https://download.pytorch.org/whl/cpu) instead. Elsewhere (macOS,
Windows, Linux on ARM) the default is already CPU-only (or uses the Mac's GPU).

Only the standard library is used here, so any Python 3.10+ with ``venv`` runs it.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
STAMP = VENV / ".rnncourse-installed"
TORCH_CPU_INDEX = "https://download.pytorch.org/whl/cpu"


def venv_python() -> Path:
    sub = "Scripts/python.exe" if os.name == "nt" else "bin/python"
    return VENV / sub


def torch_variant() -> str:
    """"cpu" when RNNCOURSE_TORCH=cpu asks for PyTorch's CPU-only wheels, else "default"."""
    value = os.environ.get("RNNCOURSE_TORCH", "").strip().lower()
    if value in ("", "default"):
        return "default"
    if value == "cpu":
        return "cpu"
    sys.exit(f"RNNCOURSE_TORCH must be 'cpu' (or unset for the package index's default); got {value!r}")


def torch_requirement() -> str:
    """The torch pin of pyproject.toml ("torch==2.13.0"): the CPU build keeps the same version."""
    match = re.search(r'"(torch\s*==\s*[^"]+)"', (ROOT / "pyproject.toml").read_text())
    if not match:
        sys.exit("pyproject.toml pins no torch version (torch==...)")
    return match.group(1).replace(" ", "")


def wanted_stamp() -> str:
    # Reinstall when the dependency spec, the torch variant or the interpreter changes.
    spec = (ROOT / "pyproject.toml").read_bytes()
    return hashlib.sha256(spec + sys.version.encode() + torch_variant().encode()).hexdigest()


def quiet_env() -> dict:
    """pip's environment: setuptools' editable-install banner ("Please be careful with
    folders in your working directory...") is not for learners; errors still show."""
    env = dict(os.environ)
    env["PYTHONWARNINGS"] = ",".join(w for w in [env.get("PYTHONWARNINGS"),
                                                 "ignore:Editable installation"] if w)
    return env


def run(cmd: list, **kw) -> None:
    print("+", " ".join(str(c) for c in cmd), flush=True)
    subprocess.run([str(c) for c in cmd], check=True, **kw)


def install_cpu_torch(py: Path) -> None:
    """torch from PyTorch's CPU-only index, the version pyproject.toml pins."""
    req = torch_requirement()
    cmd = [py, "-m", "pip", "install", "--quiet", req, "--index-url", TORCH_CPU_INDEX]
    try:
        installed = subprocess.run([str(py), "-c", "import importlib.metadata as m; print(m.version('torch'))"],
                                   capture_output=True, text=True).stdout.strip()
    except OSError:
        installed = ""
    if installed and sys.platform.startswith("linux") and "+cpu" not in installed:
        # The CUDA build is there already (an earlier set-up): replace it.
        cmd[4:4] = ["--force-reinstall", "--no-deps"]
        print(f"Replacing torch {installed} with the CPU build; `{py} -m pip uninstall` the "
              "nvidia-* packages (or delete .venv and set up again) to free their disk space.", flush=True)
    run(cmd, env=quiet_env())


def setup() -> Path:
    if sys.version_info < (3, 10):
        sys.exit(f"rnncourse needs Python 3.10 or newer; this is {sys.version.split()[0]}.")
    py = venv_python()
    if not py.exists():
        run([sys.executable, "-m", "venv", VENV])
    if STAMP.exists() and STAMP.read_text() == wanted_stamp():
        print(f"Environment up to date: {VENV}", flush=True)
        return py
    run([py, "-m", "pip", "install", "--quiet", "--upgrade", "pip"], env=quiet_env())
    if torch_variant() == "cpu":
        install_cpu_torch(py)
    run([py, "-m", "pip", "install", "--quiet", "-e", f"{ROOT}[test]"], env=quiet_env())
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


def runtime_dir() -> Path:
    """Where Jupyter keeps kernels' connection files (jupyter_core's rule, in short)."""
    if os.environ.get("JUPYTER_RUNTIME_DIR"):
        return Path(os.environ["JUPYTER_RUNTIME_DIR"])
    if os.environ.get("JUPYTER_DATA_DIR"):
        return Path(os.environ["JUPYTER_DATA_DIR"]) / "runtime"
    if sys.platform == "darwin":
        return Path.home() / "Library" / "Jupyter" / "runtime"
    data = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(data) / "jupyter" / "runtime"


def kernel_transport_args() -> list:
    """Kernels over local sockets, not TCP: ipykernel then has no reason to warn, at
    every kernel start, that it "is running over TCP without encryption". Only where
    the socket paths (<runtime>/kernel-<uuid>-ipc-N) fit the OS's limit (104 bytes on
    macOS), and not on Windows, which has no such sockets."""
    if os.name == "nt" or len(str(runtime_dir())) + len("/kernel-") + 36 + len("-ipc-9") > 100:
        return []
    return ["--KernelManager.transport=ipc"]


def lab(py: Path, extra: list) -> int:
    # Report (and warn about) the kernel and the widget front end before starting:
    # a mismatch shows up in the browser as "Error displaying widget".
    subprocess.call([str(py), "-m", "rnncourse.labenv"], cwd=ROOT)
    cmd = lab_command(py, ROOT, [*kernel_transport_args(), *extra])
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


GALLERY = ROOT / ".gallery"


def free_port() -> int:
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def explore(py: Path, extra: list) -> int:
    """Build the gallery (rnncourse.gallery: one page per exploration of the lesson
    map, into .gallery/) and serve it with Voilà on this machine only; the browser
    opens on its landing page once the server answers."""
    import threading
    import time
    import urllib.request
    import webbrowser

    build = subprocess.call([str(py), "-m", "rnncourse.gallery", "build", str(GALLERY)], cwd=ROOT)
    if build:
        return build
    port = free_port()
    url = f"http://127.0.0.1:{port}/voila/render/index.ipynb"
    code = ("import sys; from pathlib import Path; from rnncourse.gallery import voila_command; "
            "import json; print(json.dumps(voila_command(sys.executable, Path(sys.argv[1]), int(sys.argv[2]))[1:]))")
    args = json.loads(subprocess.run([str(py), "-c", code, str(GALLERY), str(port)], cwd=ROOT,
                                     capture_output=True, text=True, check=True).stdout)
    cmd = [str(py), *args, *kernel_transport_args(), *extra]
    print("+", " ".join(cmd), flush=True)
    print(f"The gallery opens at {url} (open it yourself if no browser appears). "
          "Stop it with Ctrl+C.", flush=True)

    def open_when_ready():
        for _ in range(600):
            try:
                urllib.request.urlopen(url, timeout=2).close()
                webbrowser.open(url)
                return
            except OSError:
                time.sleep(0.5)

    proc = subprocess.Popen(cmd, cwd=ROOT)
    threading.Thread(target=open_when_ready, daemon=True).start()
    while True:
        try:
            return proc.wait()
        except KeyboardInterrupt:
            continue


def find_chromium(py: Path) -> str | None:
    """The Chromium the browser tests would drive (tests/test_browser.py's rule):
    $RNNCOURSE_CHROMIUM, one on PATH, or Playwright's own download."""
    for candidate in [os.environ.get("RNNCOURSE_CHROMIUM"), shutil.which("chromium"),
                      shutil.which("chromium-browser"), shutil.which("google-chrome")]:
        if candidate and Path(candidate).exists():
            return candidate
    probe = ("from pathlib import Path\nfrom playwright.sync_api import sync_playwright\n"
             "with sync_playwright() as p:\n    e = p.chromium.executable_path\n"
             "    print(e if e and Path(e).exists() else '')")
    try:
        found = subprocess.run([str(py), "-c", probe], capture_output=True, text=True, timeout=60).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        return None
    return found or None


def skipped_summary(py: Path) -> list:
    """What the suite could not test on this machine, and how to get it."""
    lines = []
    if find_chromium(py) is None:
        lines.append(
            "The browser tests were skipped: no Chromium here (tests/test_browser.py, and the "
            "screenshots of tests/test_hub.py). Get one: on Debian or Ubuntu "
            "`sudo apt-get install chromium` (or set RNNCOURSE_CHROMIUM to a Chromium or Chrome "
            f"binary); on a machine with internet `{py} -m playwright install chromium`.")
    if shutil.which("configurable-http-proxy") is None:
        lines.append(
            "The JupyterHub test was skipped: no configurable-http-proxy (JupyterHub's proxy) "
            "on PATH. Get it with Node.js: `npm install -g configurable-http-proxy` "
            "(.ci/run does this).")
    return lines


def test(py: Path, extra: list) -> int:
    cmd = [py, "-m", "pytest", *extra]
    print("+", " ".join(str(c) for c in cmd), flush=True)
    status = subprocess.call([str(c) for c in cmd], cwd=ROOT)
    for line in skipped_summary(py):
        print(f"course.py: {line}", flush=True)
    return status


def release(py: Path, extra: list) -> int:
    return subprocess.call([str(py), str(ROOT / "tools" / "release.py"), *extra], cwd=ROOT)


def main(argv: list) -> int:
    if not argv or argv[0] not in {"lab", "explore", "test", "setup", "release"}:
        print(__doc__)
        return 2
    py = setup()
    if argv[0] == "lab":
        return lab(py, argv[1:])
    if argv[0] == "explore":
        return explore(py, argv[1:])
    if argv[0] == "test":
        return test(py, argv[1:])
    if argv[0] == "release":
        return release(py, argv[1:])
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
