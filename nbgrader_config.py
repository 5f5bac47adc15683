"""nbgrader configuration of rnncourse (checked against nbgrader 0.9.6).

The course root is this folder. Instructors run every ``nbgrader`` command from
here; the formgrader finds this file when JupyterLab is opened here.
Each setting below answers a behaviour observed in nbgrader 0.9.x, described
in docs/nbgrader.md (and proved by tests/test_nbgrader_config.py and
tests/test_grading.py): several of the defaults give full marks to wrong code
or leak hidden tests to learners.
"""
import os
import sys
import warnings

from nbconvert.preprocessors import CSSHTMLHeaderPreprocessor
from nbgrader.converters import Autograde
from nbgrader.preprocessors import ClearHiddenTests, Execute, GetGrades
from sqlalchemy.exc import SAWarning

c = get_config()  # noqa: F821 (injected by traitlets when it loads this file)
ROOT = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(ROOT, "tools"))
from nbgrader_hardening import ExecuteUntilStuck, ShortTestTracebacks  # noqa: E402

# nbgrader 0.9's gradebook trips SQLAlchemy 2's "not in session ... will not proceed"
# warning for every new submission; the rows are added right after, nothing is lost.
warnings.filterwarnings("ignore", category=SAWarning, module=r"nbgrader\.")

# --- Layout -----------------------------------------------------------------
c.CourseDirectory.root = ROOT
c.CourseDirectory.course_id = "rnncourse"
# Hand-edited notebooks (solutions and hidden tests) live in solutions/, the
# generated student version in notebooks/, which learners open directly.
c.CourseDirectory.source_directory = "solutions"
c.CourseDirectory.release_directory = "notebooks"
# The gradebook is nbgrader's default, sqlite:///<root>/gradebook.db (git-ignored).
# A class on JupyterHub can point c.CourseDirectory.db_url at a server database.

# --- Generating the student version ---------------------------------------------
# A stub that says what to do and fails loudly, so an untouched exercise scores 0.
c.ClearSolutions.code_stub = {
    "python": "# YOUR CODE HERE: replace these two lines with your implementation.\n"
              "raise NotImplementedError(\"Not implemented yet: write your code here, "
              "then run the test cell below.\")"
}
c.ClearSolutions.text_stub = "YOUR ANSWER HERE"

# --- Executing submissions (autograde and validate) ------------------------------
# Seconds per cell, not per notebook. Every notebook runs in about a minute in
# total, so 120 s only ever trips on a learner's endless loop, and then only
# that cell loses its points.
c.Execute.timeout = 120
# A loop that swallows KeyboardInterrupt keeps the kernel busy after the
# timeout's interrupt; with True nbgrader aborts the whole submission.
c.Execute.raise_on_iopub_timeout = False
# ...and each later cell would then wait its full timeout on the busy kernel:
# ExecuteUntilStuck (tools/nbgrader_hardening.py) marks them not run instead,
# once the kernel has not answered for ExecuteUntilStuck.stuck_grace (30 s).
c.Autograde.autograde_preprocessors = [
    ExecuteUntilStuck if p is Execute else p
    for p in Autograde.class_traits()["autograde_preprocessors"].default()
]
# nbclient skips cells tagged "skip-execution" and autograde does not restore
# tags, so a learner could tag the test cells away. No cell carries this tag.
c.Execute.skip_cells_with_tag = "rnncourse-no-cell-is-ever-skipped"

# A test cell scores 0 if it writes anything to stderr, even a harmless torch
# UserWarning under a correct answer. Grades must depend only on whether the
# test raised, so drop every stderr stream after execution (errors are not
# streams: a failing test still scores 0). IgnorePattern is off by default.
c.IgnorePattern.enabled = True
c.IgnorePattern.pattern = r"[\s\S]*"

# A learner who deletes a test cell gets it back (and its points at stake).
c.OverwriteCells.add_missing_cells = True


# nbgrader starts one kernel per notebook. Over TCP, ipykernel warns at every
# start that it "is running over TCP without encryption", once per submission in
# an instructor's autograde log. Over local sockets it has nothing to warn about.
# The sockets go in a private folder of this nbgrader process (an absolute path:
# autograde starts each kernel in its submission's folder, where a relative one
# would point elsewhere), short enough for every OS's socket-path limit, removed
# on exit. Windows has no such sockets and keeps TCP.
if os.name != "nt":
    import atexit
    import shutil
    import tempfile

    _sockets = tempfile.mkdtemp(prefix="rnncourse-kernels-")
    atexit.register(shutil.rmtree, _sockets, ignore_errors=True)
    c.KernelManager.transport = "ipc"
    c.KernelManager.ip = os.path.join(_sockets, "k")


# --- Feedback --------------------------------------------------------------------
# nbgrader's default list is [GetGrades, CSSHTMLHeaderPreprocessor]; feedback
# otherwise shows hidden tests verbatim (nbgrader issues #917, #1363), and
# without ShortTestTracebacks a failed test's traceback still quotes them.
c.GenerateFeedback.preprocessors = [
    ClearHiddenTests,
    ShortTestTracebacks,
    GetGrades,
    CSSHTMLHeaderPreprocessor,
]
