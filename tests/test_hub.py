"""A class on a real JupyterHub, end to end: deploy/jupyterhub/ as an instructor deploys it.

One hub (tests/_hub.py: loopback ports, configurable-http-proxy, the deployment's
jupyterhub_config.py with a password login and one OS user for every server)
with an instructor, two students of the course (alice, bob) and carol, a
student of another course (dl101). Through the hub, as the browser would:

- the instructor, in the formgrader *service*, generates and releases 01_rnn;
- alice and bob, each through their own server's nbgrader endpoints (what
  the Assignments tab calls), fetch it; alice fills in the solution (saved
  through her server's contents API), bob hands in the release untouched;
  both submit;
- the instructor collects, autogrades each submission, generates and
  releases feedback; the students fetch their feedback;
- the scores are read back from the formgrader's gradebook API and from
  ``nbgrader export``: alice full marks on every autograded test, bob zero.

Isolation (issue 16, item 3): carol sees only her course and is refused
01_rnn; a student's token opens neither the formgrader service (the
instructor's source and the submissions) nor another student's server; the
released notebook holds no solution or hidden test. On the file system, the
servers of this test all run as one OS user, so what the OS enforces is shown
with an unprivileged account (``nobody``, when the test runs as root): it can
list released assignments but neither the exchange's inbound folder (where
submissions wait) nor the grader's course folder nor a student's home.

Then headless Chromium logs in once as the instructor (the formgrader) and
once as alice (her Assignments tab): screenshots and a summary with the score
table in test-artifacts/hub/.
"""
from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import nbformat
import pytest

import _hub
from _hub import COURSE_ID, ROOT
from classroom.submissions import Submission, build, graded_tests

pytestmark = pytest.mark.slow

ARTIFACTS = ROOT / "test-artifacts" / "hub"
ASSIGNMENT = "01_rnn"
# A lesson that loads saved runs (data/adding): alice runs it in her JupyterLab.
SAVED_RUNS_LESSON = "03_vanishing_exploding"
INSTRUCTOR, STUDENTS, OTHER = "instructor", ["alice", "bob"], "carol"
OTHER_COURSE = "dl101"
FORMGRADER = f"services/{COURSE_ID}/formgrader"


def _ok(response, what: str) -> dict:
    assert response.status_code == 200, f"{what}: HTTP {response.status_code} {response.text[:800]}"
    body = response.json()
    if isinstance(body, dict) and body.get("success") is False:
        raise AssertionError(f"{what} failed: {str(body.get('value') or body.get('log'))[-2000:]}")
    return body


def _release_other_course(exchange: Path) -> None:
    """Another class's instructor has released an assignment on the same exchange."""
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_markdown_cell("Another course's assignment.")]
    folder = exchange / OTHER_COURSE / "outbound" / "hello"
    folder.mkdir(parents=True)
    nbformat.write(nb, folder / "hello.ipynb")
    for path in [exchange / OTHER_COURSE, exchange / OTHER_COURSE / "outbound", folder]:
        os.chmod(path, 0o755)
    os.chmod(folder / "hello.ipynb", 0o644)


@pytest.fixture(scope="module")
def hub():
    why = _hub.hub_unavailable()
    if why:
        pytest.skip(why)
    base = Path(tempfile.mkdtemp(prefix="rnncourse-hub-"))
    started = time.perf_counter()
    hub = None
    try:
        hub = _hub.start_hub(base, [INSTRUCTOR], STUDENTS, {f"nbgrader-{OTHER_COURSE}": [OTHER]},
                             [ASSIGNMENT, SAVED_RUNS_LESSON])
        hub.started = started
        yield hub
    finally:
        if hub is not None:
            _hub.stop_hub(hub)
            ARTIFACTS.mkdir(parents=True, exist_ok=True)
            shutil.copy2(hub.log, ARTIFACTS / "jupyterhub.log")
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="module")
def graded_class(hub):
    """The class, run once; what the checks below need from it."""
    steps = {}

    def step(name, t0):
        steps[name] = time.perf_counter() - t0

    t = time.perf_counter()
    hub.wait_service(INSTRUCTOR)
    hub.start_servers([*STUDENTS, OTHER])
    step("hub, formgrader service and 3 servers up", hub.started)

    # -- the instructor releases 01_rnn (formgrader service, through the hub) --------
    t = time.perf_counter()
    _ok(hub.post(INSTRUCTOR, f"{FORMGRADER}/api/assignment/{ASSIGNMENT}/assign"), "generate_assignment")
    _ok(hub.post(INSTRUCTOR, f"{FORMGRADER}/api/assignment/{ASSIGNMENT}/release"), "release_assignment")
    _release_other_course(hub.exchange)
    step("generate + release", t)
    t = time.perf_counter()
    for action in ("assign", "release"):
        _ok(hub.post(INSTRUCTOR, f"{FORMGRADER}/api/assignment/{SAVED_RUNS_LESSON}/{action}"),
            f"{action} {SAVED_RUNS_LESSON}")
    _ok(hub.post("alice", "user/alice/assignments/fetch",
                 json={"course_id": COURSE_ID, "assignment_id": SAVED_RUNS_LESSON}), f"alice: fetch {SAVED_RUNS_LESSON}")
    lesson_path = f"{COURSE_ID}/{SAVED_RUNS_LESSON}/{SAVED_RUNS_LESSON}.ipynb"
    released = nbformat.from_dict(hub.get("alice", f"user/alice/api/contents/{lesson_path}").json()["content"])
    lesson_solution = nbformat.read(hub.course_root / "solutions" / SAVED_RUNS_LESSON / f"{SAVED_RUNS_LESSON}.ipynb", 4)
    done = build(released, lesson_solution, Submission("alice", "the instructor's solution"))
    assert hub.put("alice", f"user/alice/api/contents/{lesson_path}",
                   json={"type": "notebook", "format": "json", "content": done}).status_code == 200
    step(f"release {SAVED_RUNS_LESSON}, alice fetches and fills it in", t)

    # -- the students fetch, work, submit (their own servers' nbgrader endpoints) -------
    t = time.perf_counter()
    solution = nbformat.read(hub.course_root / "solutions" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb", 4)
    listed, fetched = {}, {}
    nb_path = f"{COURSE_ID}/{ASSIGNMENT}/{ASSIGNMENT}.ipynb"  # path_includes_course: ~/rnncourse/01_rnn/
    for student in STUDENTS:
        listed[student] = _ok(hub.get(student, f"user/{student}/assignments", params={"course_id": COURSE_ID}),
                              f"{student}: list")["value"]
        _ok(hub.post(student, f"user/{student}/assignments/fetch",
                     json={"course_id": COURSE_ID, "assignment_id": ASSIGNMENT}), f"{student}: fetch")
        got = hub.get(student, f"user/{student}/api/contents/{nb_path}")
        assert got.status_code == 200, f"{student}'s fetched notebook: {got.status_code} {got.text[:300]}"
        fetched[student] = nbformat.from_dict(got.json()["content"])
    # alice writes the solution into her copy, saved by her server as the editor would
    filled = build(fetched["alice"], solution, Submission("alice", "the instructor's solution"))
    saved = hub.put("alice", f"user/alice/api/contents/{nb_path}",
                    json={"type": "notebook", "format": "json", "content": filled})
    assert saved.status_code == 200, saved.text[:500]
    for student in STUDENTS:  # bob hands in the release as fetched
        _ok(hub.post(student, f"user/{student}/assignments/submit",
                     json={"course_id": COURSE_ID, "assignment_id": ASSIGNMENT}), f"{student}: submit")
    step("fetch + work + submit (2 students)", t)

    # -- what a student of another course sees, and may not do -----------------------------
    other = {
        "courses": _ok(hub.get(OTHER, f"user/{OTHER}/courses"), "carol: courses")["value"],
        "alice_courses": _ok(hub.get("alice", "user/alice/courses"), "alice: courses")["value"],
        "list": _ok(hub.get(OTHER, f"user/{OTHER}/assignments", params={"course_id": COURSE_ID}),
                    "carol: list")["value"],
        "fetch": hub.post(OTHER, f"user/{OTHER}/assignments/fetch",
                          json={"course_id": COURSE_ID, "assignment_id": ASSIGNMENT}),
        "fetched": (hub.home(OTHER) / COURSE_ID / ASSIGNMENT).exists(),
    }
    other["log"] = hub.log_tail(200_000)

    # -- the instructor grades ---------------------------------------------------------------
    t = time.perf_counter()
    _ok(hub.post(INSTRUCTOR, f"{FORMGRADER}/api/assignment/{ASSIGNMENT}/collect"), "collect")
    step("collect", t)
    autograde = {}
    for student in STUDENTS:
        t = time.perf_counter()
        _ok(hub.post(INSTRUCTOR, f"{FORMGRADER}/api/submission/{ASSIGNMENT}/{student}/autograde"),
            f"autograde {student}")
        autograde[student] = time.perf_counter() - t
        steps[f"autograde {student}"] = autograde[student]
    t = time.perf_counter()
    _ok(hub.post(INSTRUCTOR, f"{FORMGRADER}/api/assignment/{ASSIGNMENT}/generate_feedback"), "generate_feedback")
    _ok(hub.post(INSTRUCTOR, f"{FORMGRADER}/api/assignment/{ASSIGNMENT}/release_feedback"), "release_feedback")
    step("generate + release feedback", t)

    t = time.perf_counter()
    feedback = {}
    for student in STUDENTS:
        _ok(hub.post(student, f"user/{student}/assignments/fetch_feedback",
                     json={"course_id": COURSE_ID, "assignment_id": ASSIGNMENT}), f"{student}: fetch_feedback")
        feedback[student] = sorted((hub.home(student) / COURSE_ID / ASSIGNMENT / "feedback").glob("*/*.html"))
    step("fetch feedback (2 students)", t)

    # -- the gradebook, read back ------------------------------------------------------------
    t = time.perf_counter()
    submissions = _ok(hub.get(INSTRUCTOR, f"{FORMGRADER}/api/submissions/{ASSIGNMENT}"), "submissions")
    export = hub.base / "grades.csv"
    done = subprocess.run([sys.executable, "-m", "nbgrader", "export", f"--to={export}"],
                          cwd=hub.course_root, capture_output=True, text=True, env=_grader_env(hub))
    assert done.returncode == 0 and export.exists(), done.stderr[-2000:]
    step("read gradebook + nbgrader export", t)

    # -- a late enrolment: `nbgrader db student add` in a terminal of the formgrader service
    # (its environment: the service's hub token) puts dave into the course's group.
    hub.api("POST", "users/dave", ok=(201, 409))
    env = _grader_env(hub)
    env.update({"JUPYTERHUB_API_TOKEN": hub.service_token, "JUPYTERHUB_USER": hub.grader_user,
                "JUPYTERHUB_API_URL": hub.api_url, "JUPYTERHUB_SERVICE_NAME": COURSE_ID})
    done = subprocess.run([sys.executable, "-m", "nbgrader", "db", "student", "add", "dave", "--first-name=Dave"],
                          cwd=hub.course_root, capture_output=True, text=True, env=env)
    assert done.returncode == 0, done.stderr[-2000:]
    enrolled = hub.api("GET", "users/dave").json().get("groups", [])

    return {"steps": steps, "lesson_path": lesson_path, "enrolled": enrolled, "listed": listed, "fetched": fetched, "solution": solution,
            "other": other, "feedback": feedback, "submissions": submissions,
            "export": list(csv.DictReader(export.open())), "autograde": autograde}


def _grader_env(hub) -> dict:
    """A terminal in the grader account: the course's config, alembic on PATH."""
    env = dict(os.environ)
    env.update({"PATH": f"{_hub.BIN}{os.pathsep}{env.get('PATH', '')}",
                "JUPYTER_CONFIG_PATH": str(hub.base / "etc" / "jupyter"),
                "RNNCOURSE_EXCHANGE": str(hub.exchange)})
    return env


def _score_table(graded) -> str:
    tests = graded_tests(graded["solution"])
    rows = [f"{ASSIGNMENT} on the hub: the formgrader's gradebook (api/submissions) and nbgrader export",
            f"{'student':<8} {'code score':>10} {'max code':>8} {'total':>6} {'max':>6}  export score"]
    export = {row["student_id"]: row for row in graded["export"] if row["assignment"] == ASSIGNMENT}
    for sub in sorted(graded["submissions"], key=lambda s: s["student"]):
        rows.append(f"{sub['student']:<8} {sub['code_score']:>10g} {sub['max_code_score']:>8g} "
                    f"{sub['score']:>6g} {sub['max_score']:>6g}  {export.get(sub['student'], {}).get('score')}")
    rows.append(f"autograded test cells: {len(tests)}, {sum(tests.values()):g} points; "
                "written answers wait for manual grading")
    return "\n".join(rows)


def test_class_runs_through_the_hub(graded_class):
    listed = graded_class["listed"]
    for student in STUDENTS:  # alice has already fetched lesson 03
        assert [(a["course_id"], a["assignment_id"], a["status"]) for a in listed[student]] == [
            (COURSE_ID, ASSIGNMENT, "released"),
            (COURSE_ID, SAVED_RUNS_LESSON, "fetched" if student == "alice" else "released")], listed[student]
    by_student = {s["student"]: s for s in graded_class["submissions"]}
    assert set(by_student) == set(STUDENTS), graded_class["submissions"]
    max_code = sum(graded_tests(graded_class["solution"]).values())
    assert by_student["alice"]["max_code_score"] == pytest.approx(max_code)
    assert by_student["alice"]["code_score"] == pytest.approx(max_code), "the solution must get full marks"
    assert by_student["bob"]["code_score"] == 0, "the untouched release must score zero"
    assert all(s["autograded"] for s in by_student.values())
    export = {row["student_id"]: float(row["score"]) for row in graded_class["export"]
              if row["assignment"] == ASSIGNMENT}
    assert export == {"alice": pytest.approx(by_student["alice"]["score"]), "bob": 0.0}
    for student in STUDENTS:
        pages = graded_class["feedback"][student]
        assert len(pages) == 1, f"{student} got feedback {pages}"
        text = pages[0].read_text()
        assert "BEGIN HIDDEN TESTS" not in text and "BEGIN SOLUTION" not in text

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    total = sum(v for k, v in graded_class["steps"].items())
    summary = "\n".join([_score_table(graded_class), "", "time per step (s):"]
                        + [f"  {k:<42} {v:6.1f}" for k, v in graded_class["steps"].items()]
                        + [f"  {'total':<42} {total:6.1f}"])
    (ARTIFACTS / "summary.txt").write_text(summary + "\n")
    print("\n" + summary)


def test_a_student_sees_only_their_course(graded_class):
    other = graded_class["other"]
    assert other["courses"] == [OTHER_COURSE]
    assert other["alice_courses"] == [COURSE_ID], "alice must not see the other course"
    assert other["list"] == [], "carol must not see rnncourse's assignments"
    # The Assignments tab's fetch answers with the (empty) list; nbgrader refuses in the log.
    fetch = other["fetch"]
    assert fetch.status_code != 200 or fetch.json().get("value") in ([], None), fetch.text[:500]
    assert not other["fetched"], "carol fetched an assignment of a course she is not in"
    assert "You do not have access to this course." in other["log"]
    # The release a student gets holds neither solutions nor hidden tests.
    text = json.dumps(graded_class["fetched"]["bob"])
    assert "BEGIN SOLUTION" not in text and "BEGIN HIDDEN TESTS" not in text


def test_nbgrader_db_student_add_enrols_in_the_course_group(graded_class):
    # nbgrader's JupyterHubAuthPlugin, with the service's role from deploy/: the
    # gradebook's new student joins nbgrader-rnncourse and so sees the course.
    # (The formgrader's Manage Students does not: nbgrader 0.9.6 adds the student
    # to the gradebook only.)
    assert f"nbgrader-{COURSE_ID}" in graded_class["enrolled"]


def test_the_hub_keeps_students_out_of_what_is_not_theirs(hub, graded_class):
    # The formgrader service serves the instructor's source and every submission: not to students.
    for path in [f"{FORMGRADER}/", f"{FORMGRADER}/api/submissions/{ASSIGNMENT}",
                 f"services/{COURSE_ID}/api/contents/solutions/{ASSIGNMENT}/{ASSIGNMENT}.ipynb",
                 f"services/{COURSE_ID}/files/submitted/bob/{ASSIGNMENT}/{ASSIGNMENT}.ipynb"]:
        r = hub.get("alice", path, allow_redirects=False)
        assert r.status_code == 403, f"alice got {r.status_code} for {path}"
    # Another student's server (and so their home, their fetched and submitted copies).
    for path in [f"user/bob/api/contents/{COURSE_ID}/{ASSIGNMENT}/{ASSIGNMENT}.ipynb", "user/bob/assignments?course_id=rnncourse"]:
        r = hub.get("alice", path, allow_redirects=False)
        assert r.status_code == 403, f"alice got {r.status_code} for {path}"
    # The users' servers do not carry the formgrader (it belongs to the service).
    assert hub.get("alice", "user/alice/formgrader/api/status").status_code == 404


def test_the_file_system_keeps_students_out(hub, graded_class):
    """What the OS enforces, seen by an account that is neither grader nor student."""
    if os.geteuid() != 0 or not shutil.which("runuser"):
        pytest.skip("needs root (runuser -u nobody) to look at the folders as an unprivileged user")

    def can(*cmd) -> bool:
        return subprocess.run(["runuser", "-u", "nobody", "--", *cmd], capture_output=True).returncode == 0

    if not can("ls", str(hub.base)):
        pytest.skip(f"the test's folder {hub.base} is not reachable by other users (TMPDIR in a private folder?)")
    outbound = hub.exchange / COURSE_ID / "outbound" / ASSIGNMENT
    assert can("ls", str(outbound)) and can("cat", str(outbound / f"{ASSIGNMENT}.ipynb")), \
        "any user must be able to read a release"
    inbound = hub.exchange / COURSE_ID / "inbound"
    assert any(inbound.iterdir()), "the submissions must be waiting in the inbound folder"
    assert not can("ls", str(inbound)), "anyone can list the submissions"
    assert not can("ls", str(hub.exchange / COURSE_ID / "feedback")), "anyone can list the feedback"
    assert not can("cat", str(hub.course_root / "solutions" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb"))
    assert not can("ls", str(hub.course_root / "submitted"))
    assert not can("ls", str(hub.home("alice") / COURSE_ID))


class _HubLab:
    """What tests/_lab_page.NotebookPage needs of a server: addresses and a log."""

    def __init__(self, hub, user: str):
        self.hub, self.user = hub, user

    def url(self, path: str = "") -> str:
        return f"{self.hub.url}user/{self.user}/{path}"

    def log_tail(self, chars: int = 4000) -> str:
        return self.hub.log_tail(chars)


def _log_in(browser, hub, user: str):
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    page = context.new_page()
    page.goto(hub.url + "hub/login", timeout=60_000)
    page.fill("#username_input", user)
    page.fill("#password_input", _hub.PASSWORD)
    page.click("#login_submit")
    # Logged in once the hub sends the browser on (JupyterLab never goes network-idle).
    page.wait_for_url(lambda url: "/hub/login" not in url, timeout=120_000, wait_until="commit")
    return context, page


@pytest.mark.browser
def test_formgrader_assignments_tab_and_a_lesson_in_chromium(hub, graded_class):
    """The instructor's formgrader, alice's Assignments tab, and alice running the
    lesson that loads saved runs (03) in her JupyterLab."""
    from _lab_page import NotebookPage
    from test_browser import CHROMIUM_ARGS, find_chromium
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.skip("playwright is not installed: pip install -e '.[test]'")
    executable = find_chromium()
    if executable is None:
        pytest.skip("no Chromium found: install Debian's chromium (apt-get install chromium) "
                    "or set RNNCOURSE_CHROMIUM to a Chromium binary")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    for old in ARTIFACTS.glob("failure-*.png"):
        old.unlink()
    start = time.perf_counter()
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=executable, headless=True, args=CHROMIUM_ARGS)
        try:
            context, page = _log_in(browser, hub, INSTRUCTOR)
            page.goto(hub.url + f"{FORMGRADER}/", timeout=120_000)
            page.locator(f"text={ASSIGNMENT}").first.wait_for(timeout=120_000)
            page.wait_for_timeout(1000)
            page.screenshot(path=str(ARTIFACTS / "formgrader.png"))
            assert "Manage Assignments" in page.inner_text("body")
            context.close()

            context, page = _log_in(browser, hub, "alice")
            page.goto(hub.url + "user/alice/lab", timeout=120_000)
            page.wait_for_function("() => !!window.jupyterapp", timeout=120_000)
            page.wait_for_timeout(1000)
            page.evaluate("() => window.jupyterapp.commands.execute('nbgrader:open-assignment-list')")
            page.get_by_text("Submitted assignments").first.wait_for(timeout=120_000)
            page.locator("text=view feedback").first.wait_for(timeout=120_000)
            page.wait_for_timeout(1000)
            page.screenshot(path=str(ARTIFACTS / "alice-assignments.png"))
            text = page.inner_text("body")
            assert ASSIGNMENT in text and SAVED_RUNS_LESSON in text

            nb = NotebookPage(page, _HubLab(hub, "alice"), graded_class["lesson_path"])
            nb.open()
            try:
                cells = nb.run_all()
                problems = nb.problems(cells)
                assert not problems, f"{SAVED_RUNS_LESSON} in alice's server:\n" + "\n".join(problems)
                loads = [c for c in cells if c["type"] == "code" and 'adding.load("lstm"' in c["source"]]
                assert loads and loads[0]["outputs"], "the cell that loads the saved runs showed nothing"
                nb.cell(loads[0]["index"]).locator(".jp-OutputArea").last.scroll_into_view_if_needed()
                page.screenshot(path=str(ARTIFACTS / "alice-03-saved-runs.png"))
            finally:
                nb.shutdown_kernel()
            context.close()
        except Exception:
            for i, ctx in enumerate(browser.contexts):  # what the page showed when it failed
                for j, pg in enumerate(ctx.pages):
                    try:
                        pg.screenshot(path=str(ARTIFACTS / f"failure-{i}-{j}.png"))
                    except Exception:  # noqa: BLE001 - a crashed page: nothing to show
                        pass
            raise
        finally:
            browser.close()
    with (ARTIFACTS / "summary.txt").open("a") as f:
        f.write(f"  {'Chromium: formgrader, Assignments tab, 03':<42} {time.perf_counter() - start:6.1f}\n")
