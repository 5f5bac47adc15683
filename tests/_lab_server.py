"""Start the course's JupyterLab for a browser test, and always stop it again.

The server is the command ``course.py lab`` runs (``course.lab_command``), started
on a temporary copy of the course so that running cells, autosave and checkpoints
never touch the committed notebooks. Everything Jupyter would read or write in the
home directory (runtime files, config, settings, workspaces, IPython profile) is
redirected to the temporary folder, so a developer's own set-up cannot change the
result and the test leaves nothing behind.
"""
from __future__ import annotations

import importlib.util
import os
import secrets
import shutil
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
VENV_PYTHON = ROOT / ".venv" / "bin" / "python"
# What a notebook may read besides itself, copied so relative paths keep working;
# nbgrader_config.py too, so the formgrader sees the copy as its course.
COURSE_PARTS = ("solutions", "notebooks", "data", "nbgrader_config.py")


def _course_module():
    # course.py is a script at the repository root, not part of the package.
    spec = importlib.util.spec_from_file_location("course", ROOT / "course.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@dataclass
class Lab:
    base_url: str  # ends with "/"
    token: str
    course_dir: Path
    log: Path

    def url(self, path: str = "") -> str:
        return f"{self.base_url}{path}{'&' if '?' in path else '?'}token={self.token}"

    def log_tail(self, chars: int = 4000) -> str:
        try:
            return self.log.read_text(errors="replace")[-chars:]
        except OSError:
            return "(no server log)"


def copy_course(dest: Path) -> Path:
    """Copy the parts of the course a notebook can see into ``dest``."""
    dest.mkdir(parents=True, exist_ok=True)
    for name in COURSE_PARTS:
        if (ROOT / name).is_dir():
            shutil.copytree(ROOT / name, dest / name,
                            ignore=shutil.ignore_patterns(".ipynb_checkpoints", "__pycache__"))
        elif (ROOT / name).is_file():
            shutil.copy2(ROOT / name, dest / name)
    return dest


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _isolated_env(tmp: Path) -> dict:
    env = dict(os.environ)
    for var, sub in [("JUPYTER_RUNTIME_DIR", "runtime"), ("JUPYTER_CONFIG_DIR", "config"),
                     ("JUPYTER_DATA_DIR", "data"), ("JUPYTERLAB_SETTINGS_DIR", "settings"),
                     ("JUPYTERLAB_WORKSPACES_DIR", "workspaces"), ("IPYTHONDIR", "ipython")]:
        (tmp / sub).mkdir(parents=True, exist_ok=True)
        env[var] = str(tmp / sub)
    # Answer JupyterLab's "get notified about news?" toast in advance: it would sit on
    # top of the notebook in screenshots and ask to call the internet.
    notification = tmp / "settings" / "@jupyterlab" / "apputils-extension" / "notification.jupyterlab-settings"
    notification.parent.mkdir(parents=True, exist_ok=True)
    notification.write_text('{"fetchNews": "false", "checkForUpdates": false}')
    env.pop("JUPYTER_PATH", None)  # only the course's environment provides kernels and extensions
    env["RNNCOURSE_FAST"] = "1"  # training cells shrink, as everywhere in the test suite
    return env


def _wait_ready(proc: subprocess.Popen, lab: Lab, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    request = urllib.request.Request(lab.base_url + "api/status",
                                     headers={"Authorization": f"token {lab.token}"})
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"JupyterLab exited with {proc.returncode}:\n{lab.log_tail()}")
        try:
            with urllib.request.urlopen(request, timeout=2) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.3)
    raise TimeoutError(f"JupyterLab did not answer within {timeout:.0f}s:\n{lab.log_tail()}")


def _die_with_parent() -> None:
    """In the server's process, before exec: if pytest itself is killed (no teardown),
    Linux sends the server SIGTERM, so no JupyterLab outlives the run."""
    try:
        import ctypes
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass  # not Linux: the fixture's teardown is the only guard


def _children(pid: int) -> list[int]:
    """Kernels run in sessions of their own, so a process-group kill misses them."""
    found = []
    for status in Path("/proc").glob("[0-9]*/status"):
        try:
            fields = dict(line.split(":\t", 1) for line in status.read_text().splitlines() if ":\t" in line)
        except OSError:
            continue
        if fields.get("PPid", "").strip() == str(pid):
            found.append(int(status.parent.name))
    return found


def _stop(proc: subprocess.Popen, lab: Lab) -> None:
    kernels = _children(proc.pid)
    # Politely first: the server shuts its kernels down and exits.
    try:
        urllib.request.urlopen(urllib.request.Request(
            lab.base_url + "api/shutdown", method="POST",
            headers={"Authorization": f"token {lab.token}"}), timeout=5).close()
        proc.wait(15)
    except (OSError, subprocess.TimeoutExpired):  # URLError, refused, reset: already gone
        pass
    # Then whatever is left: the server's process group, and each kernel it had
    # started that is still running (checked by name: a pid can be reused).
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    for pid in kernels:
        try:
            if b"ipykernel" in Path(f"/proc/{pid}/cmdline").read_bytes():
                os.kill(pid, signal.SIGKILL)
        except (OSError, ProcessLookupError):
            pass
    proc.wait(10)


@contextmanager
def running_lab(course_dir: Path, tmp: Path, startup_timeout: float = 120):
    """JupyterLab on ``course_dir``: a free loopback port, a random token, no browser."""
    course = _course_module()
    port, token = _free_port(), secrets.token_hex(16)
    extra = [
        "--no-browser", "--ServerApp.ip=127.0.0.1", f"--ServerApp.port={port}",
        "--ServerApp.port_retries=0", f"--IdentityProvider.token={token}",
        # window.jupyterapp lets the test run JupyterLab's own commands and read cell models.
        "--LabApp.expose_app_in_browser=True",
        # No calls to the internet: news feed and update check off.
        "--LabApp.news_url=None",
        "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
    ]
    cmd = [str(c) for c in course.lab_command(VENV_PYTHON, course_dir, extra)]
    log = tmp / "jupyterlab.log"
    lab = Lab(f"http://127.0.0.1:{port}/", token, course_dir, log)
    with open(log, "wb") as log_file:
        proc = subprocess.Popen(cmd, cwd=course_dir, env=_isolated_env(tmp), stdin=subprocess.DEVNULL,
                                stdout=log_file, stderr=subprocess.STDOUT, start_new_session=True,
                                preexec_fn=_die_with_parent)
    try:
        _wait_ready(proc, lab, startup_timeout)
        yield lab
    finally:
        _stop(proc, lab)
