"""The course from a regular install of the wheel, away from the repository.

On a hub, on Colab or on Binder the lessons arrive without the repository and
the package is installed, usually not editable. This test builds the wheel,
installs it (no editable link, no PYTHONPATH) into a fresh virtual environment
outside the repository, and runs every solution notebook, each copied alone
into a folder of its own, in a kernel of that environment. The lessons that
load saved runs (03, 05) must find them in the installed wheel
(rnncourse.paths.data_dir), not in the repository's data/.

The fresh environment installs only the wheel: its dependencies (torch, numpy,
Jupyter) come from the environment running the tests, through a .pth file,
so no second copy of torch is downloaded. That file names the other
environment's site-packages folders only: an editable install there (a .pth
of its own) is not followed, so the repository's package cannot leak in;
the test checks where ``rnncourse`` is imported from.
"""
from __future__ import annotations

import json
import os
import shutil
import site
import subprocess
import sys
import sysconfig
import textwrap
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
SOLUTIONS = sorted((ROOT / "solutions").glob("[0-9][0-9]_*/[0-9][0-9]_*.ipynb"))


def _clean_env() -> dict:
    env = {k: v for k, v in os.environ.items()
           if k not in {"PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV", "JUPYTER_PATH", "RNNCOURSE_DATA"}}
    env["RNNCOURSE_FAST"] = "1"
    return env


def _build_wheel(dest: Path) -> Path:
    """The wheel, built from a copy of the sources (the build's scratch folders
    stay out of the checkout)."""
    src = dest / "src"
    src.mkdir(parents=True)
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        if (ROOT / name).exists():
            shutil.copy2(ROOT / name, src / name)
    for name in ("rnncourse", "data"):
        shutil.copytree(ROOT / name, src / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    cmd = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", str(src), "-w", str(dest / "dist")]
    try:  # no second download of setuptools when this environment has a recent one
        import setuptools
        if int(setuptools.__version__.split(".")[0]) >= 77:
            cmd.insert(4, "--no-build-isolation")
    except ImportError:
        pass
    done = subprocess.run(cmd, capture_output=True, text=True, cwd=dest)
    assert done.returncode == 0, done.stdout + done.stderr
    wheels = list((dest / "dist").glob("rnncourse-*.whl"))
    assert len(wheels) == 1, wheels
    return wheels[0]


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """(python of the fresh environment, its data folder for the course)."""
    tmp = tmp_path_factory.mktemp("wheel")
    wheel = _build_wheel(tmp)
    env_dir = tmp / "env"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(env_dir)], check=True)
    python = env_dir / ("Scripts/python.exe" if os.name == "nt" else "bin/python")
    purelib = Path(subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
                                  capture_output=True, text=True, check=True, env=_clean_env()).stdout.strip())
    # --ignore-installed: an rnncourse visible from here (a PYTHONPATH, an egg-info in
    # the checkout) must not count as installed in the fresh environment.
    done = subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps",
                           "--no-index", "--ignore-installed", "--quiet", str(wheel)],
                          capture_output=True, text=True, env=_clean_env())
    assert done.returncode == 0, done.stdout + done.stderr
    # The dependencies: this environment's site-packages, after the fresh one's.
    outer = [p for p in [*site.getsitepackages(), sysconfig.get_path("purelib")]
             if Path(p).is_dir() and Path(p).resolve() != ROOT]
    (purelib / "zz_rnncourse_test_dependencies.pth").write_text("\n".join(dict.fromkeys(outer)) + "\n")
    return python, env_dir


def test_the_wheel_carries_every_saved_run(installed):
    python, env_dir = installed
    probe = textwrap.dedent("""
        import json, rnncourse, rnncourse.paths as p
        print(json.dumps({"package": rnncourse.__file__, "data": str(p.data_dir()),
                          "adding": str(p.data_dir("adding")), "longrange": str(p.data_dir("longrange"))}))
    """)
    where = tmp = env_dir.parent / "elsewhere"
    tmp.mkdir()
    done = subprocess.run([str(python), "-c", probe], capture_output=True, text=True, cwd=where, env=_clean_env())
    assert done.returncode == 0, done.stderr
    found = json.loads(done.stdout)
    assert Path(found["package"]).resolve().is_relative_to(env_dir.resolve()), found
    data = Path(found["data"])
    assert data.resolve().is_relative_to(env_dir.resolve()), found
    # Every file of the top-level data/ (the source of truth) is in the install.
    expected = sorted(str(p.relative_to(ROOT / "data")) for p in (ROOT / "data").rglob("*")
                      if p.is_file() and "__pycache__" not in p.parts)
    got = sorted(str(p.relative_to(data)) for p in data.rglob("*") if p.is_file())
    assert got == expected, ("data/ and the wheel differ: a new folder under data/ needs its line in "
                             "pyproject.toml's [tool.setuptools.data-files]")
    for sub in ("adding", "longrange"):
        assert Path(found[sub]) == data / sub


RUN = textwrap.dedent("""
    import json, sys, nbformat, rnncourse
    from nbclient import NotebookClient
    path = sys.argv[1]
    nb = nbformat.read(path, 4)
    NotebookClient(nb, timeout=300, kernel_name="python3",
                   resources={"metadata": {"path": sys.argv[2]}}).execute()
    problems = []
    for i, cell in enumerate(nb.cells):
        for out in cell.get("outputs", []):
            if out.output_type == "error":
                problems.append(f"cell {i}: {out.ename}: {out.evalue}")
            elif out.output_type == "stream" and out.name == "stderr":
                problems.append(f"cell {i} stderr: {out.text[:300]}")
    print(json.dumps({"package": rnncourse.__file__, "problems": problems}))
""")


@pytest.mark.parametrize("notebook", SOLUTIONS, ids=lambda p: p.stem)
def test_solution_runs_from_the_installed_wheel(installed, notebook, tmp_path):
    python, env_dir = installed
    folder = tmp_path / notebook.stem  # the notebook alone, as a hub's exchange hands it out
    folder.mkdir()
    shutil.copy2(notebook, folder / notebook.name)
    done = subprocess.run([str(python), "-c", RUN, str(folder / notebook.name), str(folder)],
                          capture_output=True, text=True, cwd=folder, env=_clean_env())
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert Path(result["package"]).resolve().is_relative_to(env_dir.resolve()), result
    assert not result["problems"], "\n".join(result["problems"])
