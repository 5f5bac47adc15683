"""What the notebooks' test cells call: one module per lesson, shared machinery in core."""
from rnncourse.checks.core import CheckFailed

__all__ = ["CheckFailed"]
