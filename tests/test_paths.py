"""rnncourse.paths: where the saved runs are (the installed case: tests/test_wheel.py)."""
from pathlib import Path

from rnncourse import paths

ROOT = Path(__file__).resolve().parents[1]


def test_a_checkout_uses_its_top_level_data():
    assert paths.data_dir() == ROOT / "data"
    assert paths.data_dir("adding") == ROOT / "data" / "adding"
    assert (paths.data_dir("adding") / "lstm.pt").is_file()


def test_rnncourse_data_comes_first(tmp_path, monkeypatch):
    (tmp_path / "adding").mkdir()
    monkeypatch.setenv(paths.ENV, str(tmp_path))
    assert paths.data_dir("adding") == tmp_path / "adding"
    # a folder the variable's root lacks is still found in the checkout
    assert paths.data_dir("longrange") == ROOT / "data" / "longrange"


def test_nowhere_names_the_checkout(monkeypatch):
    monkeypatch.delenv(paths.ENV, raising=False)
    assert paths.data_dir("no-such-run") == ROOT / "data" / "no-such-run"
