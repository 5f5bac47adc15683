"""The check tests' one way of saying "this wrong function is rejected with this diagnosis"."""
from __future__ import annotations

import pytest

from rnncourse.checks.core import CheckFailed


def assert_rejected(check, fn, diagnosis: str, exercise: str | None = None, hidden: bool = True,
                    first_case: bool = False) -> str:
    """``check(fn, hidden=hidden)`` raises CheckFailed whose message contains
    ``diagnosis``, starts with ``exercise`` and a case (``first_case``: case 1)
    when ``exercise`` is given, and prints no tensor. Returns the message."""
    with pytest.raises(CheckFailed) as info:
        check(fn, hidden=hidden)
    msg = str(info.value)
    assert diagnosis in msg, msg
    if exercise:
        assert msg.startswith(f"{exercise}, case {'1 of ' if first_case else ''}"), msg
    assert "tensor(" not in msg, msg  # never the expected (or any) tensor
    return msg
