"""nbgrader configuration for every account on the hub: /etc/jupyter/nbgrader_config.py
(on The Littlest JupyterHub: /opt/tljh/user/etc/jupyter/nbgrader_config.py).

The course's own settings (source and release folders, grading hardening,
course_id) stay in the course folder's nbgrader_config.py, which the
formgrader service reads from its working directory and which wins over this
file. Students' servers read only this one.
"""
import os

from nbgrader.auth import JupyterHubAuthPlugin

c = get_config()  # noqa: F821 (injected by traitlets)

# The exchange: one folder every user can write (mode 777; nbgrader sets the
# modes inside it: students can list releases but not each other's submissions).
c.Exchange.root = os.environ.get("RNNCOURSE_EXCHANGE", "/srv/nbgrader/exchange")
# One subfolder per course, so that several classes can share the hub.
c.Exchange.path_includes_course = True
# A student sees, fetches and submits only the courses of their hub groups
# (nbgrader-<course>); instructors those of formgrade-<course>.
c.Authenticator.plugin_class = JupyterHubAuthPlugin

# Submissions under the hub user's name. nbgrader names a submission after the
# OS account (on The Littlest JupyterHub that is jupyter-<name>, and in one-uid
# set-ups like Zero to JupyterHub jovyan), while course membership goes by hub
# names; in a user's server the hub name is JUPYTERHUB_USER. Not in the
# formgrader service (JUPYTERHUB_SERVICE_NAME is set there): there student_id
# stays "*", every student.
if os.environ.get("JUPYTERHUB_USER") and not os.environ.get("JUPYTERHUB_SERVICE_NAME"):
    c.CourseDirectory.student_id = os.environ["JUPYTERHUB_USER"]
