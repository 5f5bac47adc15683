"""A throw-away nbgrader course on which the tests play instructor and students.

The instructor's steps run as the ``nbgrader`` commands the README gives; the
students fetch and submit in-process through nbgrader's exchange classes, as
the Assignments tab in JupyterLab does (a command per student would add two
seconds of start-up each and test nothing more).
"""
from __future__ import annotations

import csv
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import nbformat
from traitlets.config import Config

ROOT = Path(__file__).resolve().parents[2]
COURSE_ID = "rnncourse"
sys.path.insert(0, str(ROOT / "tools"))
import release  # noqa: E402  (tools/release.py: assignment discovery, nbgrader's env)

# In-process gradebook access shells out to `alembic`: it must be on PATH.
os.environ["PATH"] = release.nbgrader_env()["PATH"]


class Course:
    """A copy of the course (config and one assignment's source) in ``root``,
    with a local exchange and a home folder per student."""

    def __init__(self, root: Path, assignment: str, timeout: int = 20, source: Path | None = None):
        """``source``: the assignment's folder of instructor notebooks
        (default: the course's solutions/<assignment>)."""
        self.root = Path(root)
        self.assignment = assignment
        self.timeout = timeout  # per cell: short, so the endless loop costs little
        self.exchange = self.root / "exchange"
        self.homes = self.root / "homes"
        self.exchange.mkdir(parents=True)
        self.homes.mkdir()
        shutil.copy(ROOT / "nbgrader_config.py", self.root)
        (self.root / "tools").mkdir()
        shutil.copy(ROOT / "tools" / "nbgrader_hardening.py", self.root / "tools")
        shutil.copytree(source or ROOT / "solutions" / assignment,
                        self.root / "solutions" / assignment)
        self.log: list[str] = []

    # -- the instructor ---------------------------------------------------------
    def nbgrader(self, *args: str) -> float:
        """Run one nbgrader command in the course root; return its wall time."""
        cmd = [sys.executable, "-m", "nbgrader", *args,
               f"--Exchange.root={self.exchange}", "--log-level=INFO"]
        env = release.nbgrader_env()
        env["RNNCOURSE_FAST"] = "1"
        start = time.perf_counter()
        done = subprocess.run(cmd, cwd=self.root, env=env, capture_output=True, text=True)
        took = time.perf_counter() - start
        self.log.append(f"$ nbgrader {' '.join(args)}  ({took:.1f} s)\n{done.stderr}{done.stdout}")
        # nbgrader logs some failures and still exits 0; a broken config file is
        # only logged, and the command then runs on defaults. (Its ERROR lines
        # alone do not mean failure: a cell timing out is logged as one.)
        failed = any(sign in done.stderr for sign in (
            "There was an error processing", "Exception while loading config file",
            "No notebooks were matched", "| CRITICAL]"))
        if done.returncode != 0 or failed:
            raise RuntimeError(f"nbgrader {' '.join(args)} failed:\n{done.stderr}{done.stdout}")
        return took

    def generate_and_release(self) -> None:
        self.nbgrader("generate_assignment", self.assignment, "--force")
        self.nbgrader("release_assignment", self.assignment, "--force")

    def collect(self) -> None:
        self.nbgrader("collect", self.assignment)

    def _autograde_args(self) -> list[str]:
        return ["autograde", self.assignment, "--force", f"--Execute.timeout={self.timeout}",
                f"--ExecuteUntilStuck.stuck_grace={self.timeout}"]

    def autograde(self, student: str) -> float:
        """Grade one submission (again); return the command's wall time."""
        return self.nbgrader(*self._autograde_args(), f"--student={student}")

    def autograde_class(self) -> dict[str, float]:
        """Grade every collected submission with one command, as an instructor
        would; return the seconds spent on each student, read from the log's
        timestamps (a student's time runs until the next student's first line,
        so nbgrader's own start-up, about 2 s, is not in it)."""
        stamp = "--NbGrader.log_format=%(created).3f [%(name)s | %(levelname)s] %(message)s"
        self.nbgrader(*self._autograde_args(), stamp)
        starts, last = {}, 0.0
        for line in self.log[-1].splitlines():
            m = re.match(r"(\d+\.\d+) \[", line)
            if not m:
                continue
            last = float(m.group(1))
            who = re.search(r"/submitted/([^/]+)/", line)
            if who and who.group(1) not in starts:
                starts[who.group(1)] = last
        order = sorted(starts, key=starts.get)
        ends = [starts[s] for s in order[1:]] + [last]
        return {s: end - starts[s] for s, end in zip(order, ends)}

    def generate_feedback(self) -> None:
        self.nbgrader("generate_feedback", self.assignment, "--force")

    def export(self) -> list[dict]:
        out = self.root / "grades.csv"
        self.nbgrader("export", f"--to={out}")
        with open(out, newline="") as fh:
            return list(csv.DictReader(fh))

    def feedback_html(self, student: str) -> str:
        path = self.root / "feedback" / student / self.assignment / f"{self.assignment}.html"
        return path.read_text()

    def scores(self, student: str) -> dict[str, tuple[float | None, float, str]]:
        """grade_id -> (auto_score, max_score, cell_type) from the gradebook."""
        from nbgrader.api import Gradebook
        url = f"sqlite:///{self.root / 'gradebook.db'}"
        with Gradebook(url, COURSE_ID) as gb:
            nb = gb.find_submission_notebook(self.assignment, self.assignment, student)
            return {g.name: (g.auto_score, g.max_score, g.cell.cell_type) for g in nb.grades}

    # -- a student --------------------------------------------------------------
    def _student_config(self, student: str) -> Config:
        home = self.homes / student
        home.mkdir(exist_ok=True)
        cfg = Config()
        cfg.CourseDirectory.course_id = COURSE_ID
        cfg.CourseDirectory.assignment_id = self.assignment
        cfg.CourseDirectory.student_id = student  # else nbgrader asks the OS for the user name
        cfg.Exchange.root = str(self.exchange)
        cfg.Exchange.cache = str(home / ".nbgrader_cache")
        cfg.Exchange.assignment_dir = str(home)
        return cfg

    def _exchange(self, student: str, step: str):
        from nbgrader.auth import Authenticator
        from nbgrader.coursedir import CourseDirectory
        from nbgrader.exchange import ExchangeFactory
        cfg = self._student_config(student)
        factory = ExchangeFactory(config=cfg)
        return getattr(factory, step)(coursedir=CourseDirectory(config=cfg),
                                      authenticator=Authenticator(config=cfg), config=cfg)

    def fetch(self, student: str) -> Path:
        """Fetch the release into the student's home; return the notebook's path."""
        self._exchange(student, "FetchAssignment").start()
        return self.homes / student / self.assignment / f"{self.assignment}.ipynb"

    def submit(self, student: str, nb: nbformat.NotebookNode) -> None:
        nbformat.write(nb, self.homes / student / self.assignment / f"{self.assignment}.ipynb")
        self._exchange(student, "Submit").start()
