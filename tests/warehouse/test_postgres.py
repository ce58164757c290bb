"""Finding the PostgreSQL server binaries, and failing clearly without them."""

from __future__ import annotations

import pytest

from sandbox import postgres


def test_the_binaries_are_found_on_this_machine():
    directory = postgres.find_bin_dir()
    assert all((directory / name).is_file() for name in ("initdb", "pg_ctl", "postgres"))


def test_the_debian_layout_is_searched_newest_first(monkeypatch, tmp_path):
    for version in ("9", "13", "15"):
        (tmp_path / version / "bin").mkdir(parents=True)
        for name in ("initdb", "pg_ctl", "postgres"):
            (tmp_path / version / "bin" / name).touch()
    monkeypatch.setattr(postgres.shutil, "which", lambda name: None)
    monkeypatch.setattr(postgres.glob, "glob", lambda pattern: [str(tmp_path / v / "bin") for v in ("9", "15", "13")])
    assert postgres.find_bin_dir() == tmp_path / "15" / "bin"


def test_without_them_the_message_says_what_to_install(monkeypatch):
    monkeypatch.setattr(postgres.shutil, "which", lambda name: None)
    monkeypatch.setattr(postgres.glob, "glob", lambda pattern: [])
    with pytest.raises(postgres.PostgresNotFound, match=r"initdb, pg_ctl, postgres.*postgresql-15"):
        postgres.find_bin_dir()
