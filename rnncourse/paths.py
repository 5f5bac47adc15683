"""Where the course's saved runs are, in a source checkout and in an installed wheel.

The repository's top-level ``data/`` folder is the source of truth (each file
there says which command regenerates it). A wheel carries the same files as
data files, installed under ``<prefix>/share/rnncourse/data/`` (pyproject.toml,
``[tool.setuptools.data-files]``), because a lesson on a hub, on Colab or on
Binder runs from a regular install, not from the repository.

``data_dir("adding")`` is the folder holding ``data/adding/*``, looked up in
this order:

1. ``$RNNCOURSE_DATA`` (a folder with the same layout as ``data/``), if set;
2. the ``data/`` folder next to the package, when the package is imported from
   its source checkout (an editable install, ``PYTHONPATH``, tests);
3. the files the installed distribution records (``importlib.metadata``),
   which finds them for any installation scheme (virtualenv, ``--user``,
   ``--prefix``, Debian's ``/usr/local``);
4. ``share/rnncourse/data`` under each of Python's installation schemes.

When none has it, the source checkout's path is returned, so that a caller's
"file not found: regenerate it with ..." message names the place to write to.
"""
from __future__ import annotations

import os
import sysconfig
from pathlib import Path

ENV = "RNNCOURSE_DATA"
PACKAGE_DIR = Path(__file__).resolve().parent
SOURCE_DATA = PACKAGE_DIR.parent / "data"
SHARE = Path("share") / "rnncourse" / "data"


def _from_source() -> Path | None:
    # Only a checkout has pyproject.toml beside the package: a folder called data/
    # next to site-packages/rnncourse belongs to someone else.
    if SOURCE_DATA.is_dir() and (PACKAGE_DIR.parent / "pyproject.toml").is_file():
        return SOURCE_DATA
    return None


def _from_metadata() -> Path | None:
    try:
        from importlib.metadata import PackageNotFoundError, distribution
        files = distribution("rnncourse").files or []
    except (ImportError, PackageNotFoundError):
        return None
    for entry in files:
        parts = entry.parts
        for i in range(len(parts) - 3):
            if parts[i:i + 3] == SHARE.parts:
                located = Path(entry.locate()).resolve()
                # .../share/rnncourse/data/<sub>/<file>: up to .../share/rnncourse/data
                return located.parents[len(parts) - i - 4]
    return None


def _from_schemes() -> list[Path]:
    found = []
    for scheme in sysconfig.get_scheme_names():
        try:
            base = sysconfig.get_path("data", scheme)
        except KeyError:
            continue
        if base and (Path(base) / SHARE).is_dir():
            found.append(Path(base) / SHARE)
    return found


def data_roots() -> list[Path]:
    """Every place that holds the course's data, in the order they are tried."""
    roots = []
    if os.environ.get(ENV):
        roots.append(Path(os.environ[ENV]).expanduser())
    for root in [_from_source(), _from_metadata(), *_from_schemes()]:
        if root is not None and root not in roots:
            roots.append(root)
    return roots


def data_dir(name: str = "") -> Path:
    """The folder of saved runs ``name`` (``"adding"``, ``"longrange"``), or the data
    root itself; the first of :func:`data_roots` that has it, else where a source
    checkout keeps it."""
    for root in data_roots():
        if (root / name).is_dir():
            return root / name
    return SOURCE_DATA / name
