"""course.py's set-up choices that a newcomer meets: the torch build, quiet pip,
the kernels' transport and the summary of what the suite could not test."""
import importlib.util
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture()
def course():
    spec = importlib.util.spec_from_file_location("course", ROOT / "course.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_cpu_build_keeps_the_pinned_version(course, monkeypatch, tmp_path):
    assert course.torch_requirement() == "torch==2.13.0"
    monkeypatch.delenv("RNNCOURSE_TORCH", raising=False)
    assert course.torch_variant() == "default"
    default_stamp = course.wanted_stamp()
    monkeypatch.setenv("RNNCOURSE_TORCH", "CPU")
    assert course.torch_variant() == "cpu"
    assert course.wanted_stamp() != default_stamp, "switching to the CPU build must reinstall"
    ran = []
    monkeypatch.setattr(course, "run", lambda cmd, **kw: ran.append([str(c) for c in cmd]))
    course.install_cpu_torch(Path("/nonexistent/python"))
    assert ran and ran[0][-3:] == ["torch==2.13.0", "--index-url", course.TORCH_CPU_INDEX]
    monkeypatch.setenv("RNNCOURSE_TORCH", "cuda")
    with pytest.raises(SystemExit):
        course.torch_variant()


def test_pip_runs_without_the_editable_banner(course, monkeypatch):
    monkeypatch.setenv("PYTHONWARNINGS", "default")
    assert course.quiet_env()["PYTHONWARNINGS"] == "default,ignore:Editable installation"


def test_kernels_use_local_sockets_where_their_paths_fit(course, monkeypatch):
    monkeypatch.setenv("JUPYTER_RUNTIME_DIR", "/tmp/jupyter-runtime")
    assert course.kernel_transport_args() == (["--KernelManager.transport=ipc"] if course.os.name != "nt" else [])
    monkeypatch.setenv("JUPYTER_RUNTIME_DIR", "/" + "x" * 80)
    assert course.kernel_transport_args() == []


def test_the_summary_says_how_to_get_what_was_missing(course, monkeypatch):
    monkeypatch.delenv("RNNCOURSE_CHROMIUM", raising=False)
    monkeypatch.setattr(course.shutil, "which", lambda name: None)
    monkeypatch.setattr(course.subprocess, "run", lambda *a, **kw: type("R", (), {"stdout": ""})())
    lines = course.skipped_summary(Path("/venv/bin/python"))
    assert any("apt-get install chromium" in l and "playwright install chromium" in l for l in lines)
    assert any("npm install -g configurable-http-proxy" in l for l in lines)
