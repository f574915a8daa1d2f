"""The one atomic writer: a reader sees the old complete folder or the new one, and a stranger's folder is kept."""

from __future__ import annotations

import json

import pytest

from latent_triplane_ns import atomic
from latent_triplane_ns.atomic import NotOurFolderError, atomic_directory, atomic_file, write_json

MARKER = "ours.json"


def test_the_old_folder_stays_complete_until_the_new_one_is(tmp_path):
    final = tmp_path / "out"
    with atomic_directory(final, marker=MARKER) as tmp:
        (tmp / "a.txt").write_text("first")
        assert not final.exists()  # nothing is visible until the folder is complete
    with atomic_directory(final, marker=MARKER) as tmp:
        (tmp / "a.txt").write_text("second")
        assert (final / "a.txt").read_text() == "first"  # the old one stays, whole, meanwhile
    assert (final / "a.txt").read_text() == "second"
    assert json.loads((final / MARKER).read_text()) == {"written_by": "latent-triplane-ns"}
    assert not tmp.exists() and sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_the_fallback_without_an_atomic_swap_gives_the_same_result(tmp_path, monkeypatch):
    monkeypatch.setattr(atomic, "_exchange", lambda a, b: False)
    for text in ("first", "second"):
        with atomic_directory(tmp_path / "out", marker=MARKER) as tmp:
            (tmp / "a.txt").write_text(text)
    assert (tmp_path / "out" / "a.txt").read_text() == "second"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_a_swap_exchanges_two_folders(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "x").write_text("a")
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "x").write_text("b")
    if not atomic._exchange(tmp_path / "a", tmp_path / "b"):
        pytest.skip("this OS cannot swap two paths atomically (the fallback is tested above)")
    assert (tmp_path / "a" / "x").read_text() == "b" and (tmp_path / "b" / "x").read_text() == "a"


def test_an_error_leaves_the_old_folder_and_no_temporary_one(tmp_path):
    with atomic_directory(tmp_path / "out", marker=MARKER) as tmp:
        (tmp / "a.txt").write_text("first")
    with pytest.raises(RuntimeError, match="killed"):
        with atomic_directory(tmp_path / "out", marker=MARKER) as tmp:
            (tmp / "a.txt").write_text("half")
            raise RuntimeError("killed")
    assert (tmp_path / "out" / "a.txt").read_text() == "first"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_a_folder_without_the_marker_is_never_replaced(tmp_path):
    theirs = tmp_path / "outputs"
    theirs.mkdir()
    (theirs / "thesis.tex").write_text("years of work")
    with pytest.raises(NotOurFolderError, match=r"outputs: exists and is a folder this program did not write"):
        with atomic_directory(theirs, marker=MARKER) as tmp:
            (tmp / "a.txt").write_text("x")
    assert (theirs / "thesis.tex").read_text() == "years of work"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["outputs"]
    (tmp_path / "file").write_text("x")
    with pytest.raises(NotOurFolderError, match="is a file"):
        with atomic_directory(tmp_path / "file", marker=MARKER):
            pass


def test_atomic_files(tmp_path):
    write_json(tmp_path / "a.json", {"x": 0.1 + 0.2})
    assert json.loads((tmp_path / "a.json").read_text()) == {"x": 0.30000000000000004}
    with pytest.raises(ValueError):
        atomic_file(tmp_path / "a.json", lambda tmp: (tmp.write_text("partial"), int("boom")))
    assert json.loads((tmp_path / "a.json").read_text()) == {"x": 0.30000000000000004}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.json"]
