"""Regenerate notebooks/ (the learners' copy) from solutions/ with nbgrader.

    .venv/bin/python tools/release.py            # rewrite notebooks/ in place
    .venv/bin/python tools/release.py --check    # only report whether it is up to date
    .venv/bin/python tools/release.py 01_rnn     # only these assignments

solutions/NN_topic/ is the only hand-edited copy of a notebook; notebooks/NN_topic/
is whatever ``nbgrader generate_assignment NN_topic --force`` makes of it, using the
course's nbgrader_config.py. The gradebook that generate_assignment insists on
writing goes to a throw-away folder, so releasing never touches the instructor's
gradebook.db. The same function regenerates into a temporary folder for the test
that compares it with the committed notebooks/.
"""
from __future__ import annotations

import argparse
import filecmp
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ASSIGNMENT = re.compile(r"^\d\d_[a-z0-9_]+$")


def assignments(root: Path = ROOT) -> list[str]:
    """Names of the assignments in solutions/: NN_topic folders holding NN_topic.ipynb."""
    src = root / "solutions"
    if not src.is_dir():
        return []
    return sorted(d.name for d in src.iterdir()
                  if ASSIGNMENT.match(d.name) and (d / f"{d.name}.ipynb").is_file())


def unmapped(root: Path = ROOT) -> list[str]:
    """Assignments in solutions/ without a row in the lesson map (rnncourse.lessons):
    a lesson starts with its row, so the tests and the grading pipeline see it."""
    if str(root) not in sys.path:
        sys.path.insert(0, str(root))  # this checkout's package, not another one's
    from rnncourse.lessons import LESSONS
    return sorted(set(assignments(root)) - {lesson.assignment for lesson in LESSONS})


def nbgrader_env() -> dict:
    """The environment for running nbgrader: the gradebook code shells out to the
    ``alembic`` command, which is only on PATH when the virtualenv is active."""
    env = dict(os.environ)
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    return env


def generate(dest: Path, root: Path = ROOT, names: list[str] | None = None) -> list[str]:
    """Write the student version of each assignment to dest/NAME/; return the names.

    One child process generates them all (nbgrader's start-up costs two seconds,
    and its logging and gradebook are best kept out of the caller's process).
    """
    names = assignments(root) if names is None else names
    if not names:
        return names
    dest = Path(dest).resolve()
    with tempfile.TemporaryDirectory(prefix="rnncourse-release-") as tmp:
        cmd = [sys.executable, __file__, "--into", str(dest), "--root", str(root),
               "--db", f"sqlite:///{tmp}/gradebook.db", *names]
        done = subprocess.run(cmd, cwd=root, env=nbgrader_env(), capture_output=True, text=True)
    missing = [n for n in names if not (dest / n / f"{n}.ipynb").is_file()]
    if done.returncode != 0 or missing:
        raise RuntimeError(f"nbgrader generate_assignment failed for {missing or names}:\n"
                           f"{done.stdout}\n{done.stderr}")
    return names


def _generate_here(dest: str, root: str, db_url: str, names: list[str]) -> int:
    """In this process: ``nbgrader generate_assignment NAME --force`` for each name,
    through nbgrader's Python API and the course's nbgrader_config.py."""
    from nbgrader.apps import NbGraderAPI
    from nbgrader.coursedir import CourseDirectory
    from traitlets.config.loader import PyFileConfigLoader

    config = PyFileConfigLoader("nbgrader_config.py", path=root).load_config()
    config.CourseDirectory.root = root
    config.CourseDirectory.release_directory = dest
    config.CourseDirectory.db_url = db_url
    api = NbGraderAPI(coursedir=CourseDirectory(config=config), config=config)
    for name in names:
        result = api.generate_assignment(name, force=True, create=True)
        if not result["success"]:
            print(result.get("log", ""), result.get("error", ""), file=sys.stderr)
            return 1
    return 0


def differences(fresh: Path, released: Path, names: list[str]) -> list[str]:
    """Paths under released/ that differ from fresh/: changed, missing or extra files
    of the assignments in names, and released assignment folders with no source."""
    out: list[str] = []

    def walk(cmp: filecmp.dircmp, prefix: str) -> None:
        out.extend(prefix + n for n in cmp.left_only + cmp.right_only + cmp.funny_files)
        # dircmp compares shallowly (size, mtime); compare contents instead.
        for n in cmp.common_files:
            if (Path(cmp.left) / n).read_bytes() != (Path(cmp.right) / n).read_bytes():
                out.append(prefix + n)
        for n, sub in sorted(cmp.subdirs.items()):
            walk(sub, f"{prefix}{n}/")

    for name in names:
        if not (released / name).is_dir():
            out.append(f"{name}/")
        else:
            walk(filecmp.dircmp(fresh / name, released / name,
                                ignore=["__pycache__", ".ipynb_checkpoints"]), f"{name}/")
    if released.is_dir():
        out.extend(f"{d.name}/" for d in released.iterdir()
                   if d.is_dir() and ASSIGNMENT.match(d.name) and d.name not in names)
    return sorted(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--check", action="store_true",
                        help="regenerate into a temporary folder and report differences")
    # Internal: the child process that generate() starts.
    parser.add_argument("--into", help=argparse.SUPPRESS)
    parser.add_argument("--root", help=argparse.SUPPRESS)
    parser.add_argument("--db", help=argparse.SUPPRESS)
    parser.add_argument("names", nargs="*", metavar="NN_topic",
                        help="only these assignments (default: every one in solutions/)")
    args = parser.parse_args(argv)
    if args.into:
        return _generate_here(args.into, args.root, args.db, args.names)
    unknown = sorted(set(args.names) - set(assignments()))
    if unknown:
        parser.error(f"not in solutions/: {', '.join(unknown)}")
    missing = unmapped()
    if missing:
        parser.error(f"no row in rnncourse/lessons.py for: {', '.join(missing)} "
                     "(add the lesson to the map first)")
    everything = not args.names
    released = ROOT / "notebooks"
    with tempfile.TemporaryDirectory(prefix="rnncourse-notebooks-") as tmp:
        fresh = Path(tmp) / "notebooks"
        fresh.mkdir()
        names = generate(fresh, names=args.names or None)
        stale = [p for p in differences(fresh, released, names)
                 if everything or p.split("/")[0] in names]
        if args.check:
            for path in stale:
                print(f"out of date: notebooks/{path}")
            return 1 if stale else 0
        # Replace assignment folders wholesale, and drop ones whose source is gone.
        released.mkdir(exist_ok=True)
        for old in released.iterdir():
            if everything and old.is_dir() and ASSIGNMENT.match(old.name) and old.name not in names:
                shutil.rmtree(old)
        for name in names:
            shutil.rmtree(released / name, ignore_errors=True)
            shutil.copytree(fresh / name, released / name)
    print(f"notebooks/ regenerated from solutions/: {', '.join(names) or 'no assignments'}"
          + ("" if stale else " (already up to date)"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
