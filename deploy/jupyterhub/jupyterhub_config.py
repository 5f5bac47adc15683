"""JupyterHub configuration of one rnncourse class (checked with JupyterHub 6.1 and nbgrader 0.9.6).

Use it as it is (``jupyterhub -f jupyterhub_config.py``) or, on The Littlest
JupyterHub, as a drop-in: ``/opt/tljh/config/jupyterhub_config.d/rnncourse.py``
(TLJH loads every file there after its own settings; who may log in stays
TLJH's business). README.md next to this file walks through both.

What it sets up, as nbgrader documents for JupyterHub ("one class, multiple
graders"):

- the formgrader runs as a hub *service* named after the course, as a grader
  account of its own, on the course's folder (a clone of the repository, whose
  nbgrader_config.py is the course's). Instructors open it at
  ``<hub>/services/rnncourse/formgrader`` in a tab of its own, which also avoids
  the formgrader that JupyterLab cannot show under JupyterHub >= 4.1;
- group ``formgrade-rnncourse``: the instructors (and graders); they may use that service;
- group ``nbgrader-rnncourse``: the students; nbgrader's JupyterHubAuthPlugin
  (nbgrader_config.py next to this file) shows a student only the courses of
  the groups they are in, and refuses fetching or submitting to any other;
- each user's server may read its owner's name and groups (what that plugin
  asks the hub), nothing more; the formgrader, its extension for creating
  assignments and the course list are off in users' servers (they belong to
  the service).

Everything that differs between machines is an environment variable with the
default a TLJH server uses; the test suite (tests/test_hub.py) loads this very
file and changes only the authenticator, the spawner and the ports.
"""
import os
import shutil

c = get_config()  # noqa: F821 (injected by traitlets)


def _names(var: str, default: str = "") -> list:
    return [n.strip() for n in os.environ.get(var, default).split(",") if n.strip()]


COURSE_ID = os.environ.get("RNNCOURSE_COURSE_ID", "rnncourse")
# The OS account the formgrader service runs as (create it: useradd --create-home ...).
GRADER_USER = os.environ.get("RNNCOURSE_GRADER_USER", f"grader-{COURSE_ID}")
# The course's folder: a clone of the repository, readable by the grader account only.
COURSE_ROOT = os.environ.get("RNNCOURSE_COURSE_ROOT", f"/home/{GRADER_USER}/{COURSE_ID}")
FORMGRADER_PORT = int(os.environ.get("RNNCOURSE_FORMGRADER_PORT", "9999"))
# Hub user names. Edit these lists (or set the variables); students can also be
# added later in the hub's admin panel (Groups) or with `nbgrader db student add`.
INSTRUCTORS = _names("RNNCOURSE_INSTRUCTORS", "instructor")
STUDENTS = _names("RNNCOURSE_STUDENTS")
# The single-user server of the users' environment (TLJH's, else the one on PATH).
SINGLEUSER = os.environ.get("RNNCOURSE_SINGLEUSER") or next(
    (p for p in ["/opt/tljh/user/bin/jupyterhub-singleuser"] if os.path.exists(p)),
    shutil.which("jupyterhub-singleuser") or "jupyterhub-singleuser")
USER_BIN = os.path.dirname(SINGLEUSER) if os.path.isabs(SINGLEUSER) else ""

FORMGRADE_GROUP = f"formgrade-{COURSE_ID}"  # nbgrader's names: do not change the prefixes
STUDENT_GROUP = f"nbgrader-{COURSE_ID}"

groups = dict(c.JupyterHub.load_groups) if "load_groups" in c.JupyterHub else {}
# The grader account is a hub user of the group too: the formgrader asks the hub
# which courses its own user (JUPYTERHUB_USER, the service's OS account) may grade.
groups[FORMGRADE_GROUP] = {"users": sorted({*INSTRUCTORS, GRADER_USER})}
groups[STUDENT_GROUP] = {"users": STUDENTS}
c.JupyterHub.load_groups = groups

roles = list(c.JupyterHub.load_roles) if "load_roles" in c.JupyterHub else []
roles += [
    {
        # Instructors and graders: open the course's formgrader service.
        "name": FORMGRADE_GROUP,
        "groups": [FORMGRADE_GROUP],
        "scopes": [f"access:services!service={COURSE_ID}", "list:services",
                   f"read:services!service={COURSE_ID}"],
    },
    {
        # The token of each user's server: nbgrader's JupyterHubAuthPlugin reads
        # the owner's groups to know their courses (GET /hub/api/users/<owner>).
        # The first two scopes are JupyterHub's defaults for this role.
        "name": "server",
        "scopes": ["users:activity!user", "access:servers!server",
                   "read:users:name!user", "read:users:groups!user"],
    },
    {
        # The formgrader service: `nbgrader db student add` (and the formgrader's
        # Manage Students) puts a student into the course's group.
        "name": f"{COURSE_ID}-formgrader",
        "services": [COURSE_ID],
        "scopes": ["read:users:name", "read:users:groups", "list:users", "list:groups",
                   "read:groups", f"groups!group={STUDENT_GROUP}"],
    },
]
c.JupyterHub.load_roles = roles

services = list(c.JupyterHub.services) if "services" in c.JupyterHub else []
services.append({
    "name": COURSE_ID,
    "url": f"http://127.0.0.1:{FORMGRADER_PORT}",
    "command": [SINGLEUSER, f"--ServerApp.root_dir={COURSE_ROOT}",
                # the formgrader's own page, not JupyterLab's tab with an iframe
                "--ServerApp.default_url=/formgrader"],
    "user": GRADER_USER,
    "cwd": COURSE_ROOT,  # nbgrader reads the course's nbgrader_config.py from here
    # `alembic` (the gradebook's migrations) must be on PATH.
    "environment": {"PATH": ":".join(p for p in [USER_BIN, "/usr/local/bin", "/usr/bin", "/bin"] if p)},
    "oauth_no_confirm": True,
})
c.JupyterHub.services = services

# Users' servers: the student side of nbgrader only (Assignments tab, validate).
# The formgrader, create-assignment and course list run in the service.
c.Spawner.args.extend([
    f"--ServerApp.jpserver_extensions=nbgrader.server_extensions.{ext}=False"
    for ext in ("formgrader", "create_assignment", "course_list")
])
