"""A real JupyterHub for the class test: started on loopback, always stopped again.

The hub runs deploy/jupyterhub/jupyterhub_config.py itself (the groups, roles
and the formgrader service an instructor deploys), loaded from a test config
that changes only what a throw-away hub on one machine must:

- users log in with a password (DummyAuthenticator) instead of system accounts;
- every server runs as the OS user running the tests (SimpleLocalProcessSpawner,
  home folders under the test's folder), and so does the formgrader service;
- free loopback ports for the proxy, its API, the hub and the formgrader;
- a service ``test-driver`` with an API token, to create the users' tokens and
  start their servers, as an admin would in the admin panel.

The proxy is configurable-http-proxy from npm (``npm install -g
configurable-http-proxy``; .ci/run installs it). Where the hub cannot start
(no proxy, no jupyterhub) ``hub_unavailable()`` says why, and the test skips.
"""
from __future__ import annotations

import getpass
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parents[1]
DEPLOY = ROOT / "deploy" / "jupyterhub"
BIN = Path(sys.executable).parent  # jupyterhub, jupyterhub-singleuser, alembic
COURSE_ID = "rnncourse"
PASSWORD = secrets.token_urlsafe(12)


def hub_unavailable() -> str | None:
    """Why a hub cannot start here, or None."""
    try:
        import jupyterhub  # noqa: F401
    except ImportError:
        return "jupyterhub is not installed: pip install -e '.[test]'"
    if not (BIN / "jupyterhub-singleuser").exists():
        return f"jupyterhub-singleuser is not in {BIN}"
    if not shutil.which("configurable-http-proxy"):
        return ("JupyterHub's proxy is missing: npm install -g configurable-http-proxy "
                "(Node.js from your package manager; .ci/run installs it)")
    return None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _die_with_parent() -> None:
    # If pytest itself is killed (no teardown), Linux sends the hub SIGTERM.
    try:
        import ctypes
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def descendants(pid: int) -> list[int]:
    """Every process below ``pid`` (servers and kernels start sessions of their own,
    so a process-group kill misses them)."""
    parent = {}
    for status in Path("/proc").glob("[0-9]*/status"):
        try:
            for line in status.read_text().splitlines():
                if line.startswith("PPid:"):
                    parent[int(status.parent.name)] = int(line.split()[1])
                    break
        except (OSError, ValueError):
            continue
    found, todo = [], [pid]
    while todo:
        p = todo.pop()
        kids = [c for c, pp in parent.items() if pp == p]
        found += kids
        todo += kids
    return found


@dataclass
class Hub:
    base: Path             # the test's folder: homes, exchange, course, logs
    url: str               # http://127.0.0.1:<port>/  (the proxy: what a browser opens)
    token: str             # the test-driver service's API token
    course_root: Path      # the formgrader service's course folder
    exchange: Path
    proc: subprocess.Popen | None = None
    user_tokens: dict = field(default_factory=dict)
    service_token: str = ""   # the formgrader service's hub token (a terminal there has it)
    grader_user: str = ""     # the service's account (JUPYTERHUB_USER there)
    api_url: str = ""         # the hub's API as servers reach it

    # -- plumbing --------------------------------------------------------------
    @property
    def log(self) -> Path:
        return self.base / "jupyterhub.log"

    def log_tail(self, chars: int = 6000) -> str:
        try:
            return self.log.read_text(errors="replace")[-chars:]
        except OSError:
            return "(no hub log)"

    def home(self, user: str) -> Path:
        return self.base / "home" / user

    def api(self, method: str, path: str, token: str | None = None, ok=(200, 201, 202, 204), **kw):
        """The hub's REST API (path after /hub/api/), as the test driver by default."""
        r = requests.request(method, f"{self.url}hub/api/{path}", timeout=60,
                             headers={"Authorization": f"token {token or self.token}"}, **kw)
        if ok and r.status_code not in ok:
            raise RuntimeError(f"{method} hub/api/{path}: {r.status_code} {r.text[:500]}")
        return r

    def get(self, user: str, path: str, **kw) -> requests.Response:
        """GET <hub>/<path> through the proxy with ``user``'s token."""
        return requests.get(self.url + path, timeout=120, headers=self._auth(user), **kw)

    def post(self, user: str, path: str, **kw) -> requests.Response:
        return requests.post(self.url + path, timeout=600, headers=self._auth(user), **kw)

    def put(self, user: str, path: str, **kw) -> requests.Response:
        return requests.put(self.url + path, timeout=120, headers=self._auth(user), **kw)

    def _auth(self, user: str) -> dict:
        if user not in self.user_tokens:
            r = self.api("POST", f"users/{user}/tokens", json={"note": "test_hub", "expires_in": 3600})
            self.user_tokens[user] = r.json()["token"]
        return {"Authorization": f"token {self.user_tokens[user]}"}

    # -- servers ---------------------------------------------------------------
    def start_servers(self, users: list[str], timeout: float = 120) -> None:
        for user in users:
            self.api("POST", f"users/{user}/server", ok=(201, 202, 400))  # 400: already running
        deadline = time.monotonic() + timeout
        waiting = set(users)
        while waiting and time.monotonic() < deadline:
            for user in sorted(waiting):
                server = self.api("GET", f"users/{user}").json().get("servers", {}).get("")
                if server and server.get("ready"):
                    waiting.discard(user)
            time.sleep(0.5)
        if waiting:
            raise TimeoutError(f"servers of {sorted(waiting)} not ready in {timeout:.0f}s:\n{self.log_tail()}")

    def wait_service(self, user: str, timeout: float = 120) -> None:
        """Until the formgrader service answers ``user`` (an instructor)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"the hub exited with {self.proc.returncode}:\n{self.log_tail()}")
            try:
                if self.get(user, f"services/{COURSE_ID}/formgrader/api/status").status_code == 200:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.5)
        raise TimeoutError(f"the formgrader service did not answer in {timeout:.0f}s:\n{self.log_tail()}")


def _test_config(hub: Hub, ports: dict, users: list[str], me: str) -> str:
    as_root = os.geteuid() == 0
    return f'''# Written by tests/_hub.py: the deployment's config, then what a test hub changes.
c = get_config()
load_subconfig({str(DEPLOY / "jupyterhub_config.py")!r})

c.JupyterHub.ip = "127.0.0.1"
c.JupyterHub.port = {ports["proxy"]}
c.JupyterHub.hub_ip = "127.0.0.1"
c.JupyterHub.hub_port = {ports["hub"]}
c.ConfigurableHTTPProxy.api_url = "http://127.0.0.1:{ports["proxy_api"]}"
c.ConfigurableHTTPProxy.should_start = True
c.JupyterHub.db_url = "sqlite:///{hub.base / "jupyterhub.sqlite"}"
c.JupyterHub.cookie_secret_file = {str(hub.base / "jupyterhub_cookie_secret")!r}
c.JupyterHub.pid_file = {str(hub.base / "jupyterhub.pid")!r}
c.JupyterHub.cleanup_servers = True
c.JupyterHub.cleanup_proxy = True
c.JupyterHub.log_level = "INFO"

c.JupyterHub.authenticator_class = "dummy"
c.DummyAuthenticator.password = {PASSWORD!r}
c.Authenticator.allowed_users = set({users!r})

c.JupyterHub.spawner_class = "simple"
c.SimpleLocalProcessSpawner.home_dir_template = {str(hub.base / "home" / "{username}")!r}
c.Spawner.cmd = [{str(BIN / "jupyterhub-singleuser")!r}]
c.Spawner.args.extend({(["--ServerApp.allow_root=True"] if as_root else [])!r} + [
    "--LabApp.expose_app_in_browser=True",  # the browser check uses JupyterLab's commands
    "--LabApp.news_url=None", "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate"])
c.Spawner.default_url = "/lab"
c.Spawner.environment = {{
    "PATH": {f"{BIN}:/usr/local/bin:/usr/bin:/bin"!r},
    "JUPYTER_CONFIG_PATH": {str(hub.base / "etc" / "jupyter")!r},
    "RNNCOURSE_EXCHANGE": {str(hub.exchange)!r},
    "RNNCOURSE_FAST": "1",
}}
c.Spawner.start_timeout = 120
c.Spawner.http_timeout = 120

for service in c.JupyterHub.services:
    if service["name"] == {COURSE_ID!r}:
        service["user"] = {me!r}
        service["api_token"] = {hub.service_token!r}
        service["command"] += {(["--ServerApp.allow_root=True"] if as_root else [])!r}
        service["environment"].update({{
            "PATH": {f"{BIN}:/usr/local/bin:/usr/bin:/bin"!r},
            "HOME": {str(hub.base / "home" / "grader")!r},
            "JUPYTER_CONFIG_PATH": {str(hub.base / "etc" / "jupyter")!r},
            "RNNCOURSE_EXCHANGE": {str(hub.exchange)!r},
            "RNNCOURSE_FAST": "1",
        }})
        for var in ("PYTHONPATH", "LANG"):
            if var in __import__("os").environ:
                service["environment"][var] = __import__("os").environ[var]

c.JupyterHub.services.append({{"name": "test-driver", "api_token": {hub.token!r}}})
c.JupyterHub.load_roles.append({{
    "name": "test-driver", "services": ["test-driver"],
    "scopes": ["admin:users", "admin:servers", "tokens", "list:users", "read:users", "read:users:groups"],
}})
'''


def copy_course(dest: Path, assignments: list[str]) -> None:
    """The course's folder as the grader account holds it: its config, the
    grading hardening it imports, the instructor's source of ``assignments``."""
    dest.mkdir(parents=True)
    shutil.copy2(ROOT / "nbgrader_config.py", dest)
    (dest / "tools").mkdir()
    shutil.copy2(ROOT / "tools" / "nbgrader_hardening.py", dest / "tools")
    for name in assignments:
        shutil.copytree(ROOT / "solutions" / name, dest / "solutions" / name,
                        ignore=shutil.ignore_patterns(".ipynb_checkpoints", "__pycache__"))


def start_hub(base: Path, instructors: list[str], students: list[str], others: dict,
              assignments: list[str], timeout: float = 120) -> Hub:
    """Start the hub in ``base`` (created world-traversable, as /home and /srv are).
    ``others``: extra groups of users outside the course, {group: [users]}."""
    base.mkdir(parents=True, exist_ok=True)
    os.chmod(base, 0o755)
    me = getpass.getuser()
    hub = Hub(base=base, url="", token=secrets.token_hex(32),
              course_root=base / "home" / "grader" / COURSE_ID, exchange=base / "exchange",
              service_token=secrets.token_hex(32), grader_user=me)
    (base / "home").mkdir()
    os.chmod(base / "home", 0o755)
    for user in ["grader", *instructors, *students, *[u for us in others.values() for u in us]]:
        (base / "home" / user).mkdir(exist_ok=True)
        os.chmod(base / "home" / user, 0o700)  # as useradd --create-home makes them
        # JupyterLab's "get notified about news?" toast, answered (it would cover screenshots)
        settings = base / "home" / user / ".jupyter" / "lab" / "user-settings" / "@jupyterlab" / "apputils-extension"
        settings.mkdir(parents=True)
        (settings / "notification.jupyterlab-settings").write_text('{"fetchNews": "false", "checkForUpdates": false}')
    copy_course(hub.course_root, assignments)
    # The exchange as README.md says: one folder every user can write.
    hub.exchange.mkdir()
    os.chmod(hub.exchange, 0o777)
    etc = base / "etc" / "jupyter"
    etc.mkdir(parents=True)
    shutil.copy2(DEPLOY / "nbgrader_config.py", etc / "nbgrader_config.py")
    shutil.copytree(DEPLOY / "labconfig", etc / "labconfig")

    ports = {name: free_port() for name in ("proxy", "proxy_api", "hub", "formgrader")}
    hub.url = f"http://127.0.0.1:{ports['proxy']}/"
    hub.api_url = f"http://127.0.0.1:{ports['hub']}/hub/api"
    users = sorted({*instructors, *students, *[u for us in others.values() for u in us]})
    config = base / "jupyterhub_config.py"
    config.write_text(_test_config(hub, ports, users, me))
    # Extra groups outside the course: appended to what the deploy config loads.
    if others:
        with config.open("a") as f:
            for group, members in others.items():
                f.write(f"c.JupyterHub.load_groups[{group!r}] = {{'users': {members!r}}}\n")

    env = dict(os.environ)
    env.update({
        "PATH": f"{BIN}{os.pathsep}{env.get('PATH', '')}",
        "RNNCOURSE_COURSE_ID": COURSE_ID,
        "RNNCOURSE_GRADER_USER": me,
        "RNNCOURSE_COURSE_ROOT": str(hub.course_root),
        "RNNCOURSE_FORMGRADER_PORT": str(ports["formgrader"]),
        "RNNCOURSE_INSTRUCTORS": ",".join(instructors),
        "RNNCOURSE_STUDENTS": ",".join(students),
        "RNNCOURSE_SINGLEUSER": str(BIN / "jupyterhub-singleuser"),
        "RNNCOURSE_EXCHANGE": str(hub.exchange),
        "JUPYTER_CONFIG_PATH": str(etc),
    })
    env.pop("JUPYTERHUB_API_TOKEN", None)
    with open(hub.log, "wb") as log:
        hub.proc = subprocess.Popen(
            [sys.executable, "-m", "jupyterhub", "-f", str(config)], cwd=base, env=env,
            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True, preexec_fn=_die_with_parent)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if hub.proc.poll() is not None:
            raise RuntimeError(f"the hub exited with {hub.proc.returncode}:\n{hub.log_tail()}")
        try:
            if requests.get(hub.url + "hub/api/", timeout=2).status_code == 200:
                return hub
        except requests.RequestException:
            pass
        time.sleep(0.3)
    stop_hub(hub)
    raise TimeoutError(f"the hub did not answer within {timeout:.0f}s:\n{hub.log_tail()}")


def _started(pid: int) -> str | None:
    """The process's start time (field 22 of /proc/<pid>/stat): tells a pid reused
    by another process from the one seen before."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


def stop_hub(hub: Hub) -> None:
    """Stop the hub, which stops every server, the service and the proxy; then
    kill whatever of its process tree is still there."""
    if hub.proc is None:
        return
    tree = {pid: _started(pid) for pid in descendants(hub.proc.pid)}
    if hub.proc.poll() is None:
        hub.proc.send_signal(signal.SIGTERM)  # the hub's own shutdown: servers, service, proxy
        try:
            hub.proc.wait(30)
        except subprocess.TimeoutExpired:
            pass
    try:
        os.killpg(hub.proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    tree.update({pid: _started(pid) for pid in descendants(hub.proc.pid)})
    for pid, started in tree.items():
        if started is None or _started(pid) != started:
            continue  # gone (or the pid now belongs to another process)
        try:
            os.kill(pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
    try:
        hub.proc.wait(10)
    except subprocess.TimeoutExpired:
        pass
