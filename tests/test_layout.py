"""The data folder: which files are taken, where they belong, which are refused."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from core.layout import LayoutError, locate, pending_files


def touch(path: Path, text: str = "x") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_locate_gives_bucket_campaign_and_device(tmp_path):
    path = touch(tmp_path / "acme" / "site-1" / "02001283" / "T302.tsv")
    location = locate(tmp_path, path)
    assert (location.company, location.campaign, location.device_folder) == (
        "acme",
        "site-1",
        "02001283",
    )
    assert location.relative == "acme/site-1/02001283/T302.tsv"


@pytest.mark.parametrize(
    "relative",
    ["acme/T302.tsv", "acme/site/T302.tsv", "acme/site/dev/extra/T302.tsv", "T302.tsv"],
)
def test_wrong_depth_is_refused(tmp_path, relative):
    path = touch(tmp_path / relative)
    with pytest.raises(LayoutError) as excinfo:
        locate(tmp_path, path)
    assert excinfo.value.code == "wrong_depth"
    assert "<company>/<campaign>/<device>/<file>.tsv" in excinfo.value.reason


@pytest.mark.parametrize(
    "parts",
    [
        ("a b", "site", "dev"),
        ("acme", "{{ lookup('pipe','id') }}", "dev"),
        ("acme", "site", "a;rm -rf x"),
        ("_internal", "site", "dev"),
        ("acme", ".hidden", "dev"),
        ("-rf", "site", "dev"),
    ],
)
def test_unsafe_names_are_refused(tmp_path, parts):
    path = touch(tmp_path.joinpath(*parts, "T302.tsv"))
    with pytest.raises(LayoutError) as excinfo:
        locate(tmp_path, path)
    assert excinfo.value.code == "unsafe_name"


def test_a_file_outside_the_data_folder_is_refused_even_through_a_link(tmp_path):
    data = tmp_path / "data"
    outside = touch(tmp_path / "secret.tsv")
    link_dir = data / "acme" / "site" / "dev"
    link_dir.mkdir(parents=True)
    link = link_dir / "T302.tsv"
    link.symlink_to(outside)
    for path in (outside, link):
        with pytest.raises(LayoutError) as excinfo:
            locate(data, path)
        assert excinfo.value.code == "outside_data_folder"


def test_a_missing_file(tmp_path):
    with pytest.raises(LayoutError) as excinfo:
        locate(tmp_path, tmp_path / "acme/site/dev/none.tsv")
    assert excinfo.value.code == "not_found"


def test_sweep_takes_pending_tsv_files_only(tmp_path):
    wanted = [
        touch(tmp_path / "acme/site/dev/a.tsv"),
        touch(tmp_path / "acme/site/dev/B.TSV"),
        touch(tmp_path / "acme/parsed/dev/c.tsv"),  # a campaign may be called "parsed"
        touch(tmp_path / "acme/misplaced.tsv"),  # wrong depth: taken, then refused
    ]
    touch(tmp_path / "acme/site/dev/parsed/old.tsv")
    touch(tmp_path / "acme/site/dev/error/bad.tsv")
    touch(tmp_path / "acme/site/dev/.sftpgo-upload.abc.a.tsv")
    touch(tmp_path / "acme/site/dev/notes.txt")
    touch(tmp_path / ".hidden/site/dev/x.tsv")
    outside = touch(tmp_path.parent / f"{tmp_path.name}-outside" / "y.tsv")
    os.symlink(outside, tmp_path / "acme/site/dev/link.tsv")
    os.symlink(outside.parent, tmp_path / "acme/site/linked-dev")
    found = [pending.path for pending in pending_files(tmp_path, now=0)]
    assert sorted(found) == sorted(wanted)


def test_sweep_reports_each_file_age(tmp_path):
    path = touch(tmp_path / "acme/site/dev/a.tsv")
    os.utime(path, (1000, 1000))
    (pending,) = pending_files(tmp_path, now=1060)
    assert pending.age_s == pytest.approx(60)


def test_a_folder_that_cannot_be_listed_is_reported(tmp_path, monkeypatch):
    from core.layout import pending_files

    touch(tmp_path / "acme" / "site" / "dev" / "a.tsv")
    real_scandir = os.scandir

    def scandir(path):
        if str(path).endswith("site"):
            raise PermissionError(13, "Permission denied", str(path))
        return real_scandir(path)

    monkeypatch.setattr(os, "scandir", scandir)
    unreadable: list[str] = []
    assert list(pending_files(tmp_path, 0.0, unreadable)) == []
    assert unreadable == [f"{tmp_path / 'acme' / 'site'}: Permission denied"]


def test_a_company_sweep_walks_only_that_company(tmp_path):
    from core.layout import pending_files

    for company in ("acme", "other"):
        touch(tmp_path / company / "site" / "dev" / "a.tsv")
    (tmp_path / "acme" / "site" / "dev" / "parsed").mkdir()
    touch(tmp_path / "acme" / "site" / "dev" / "parsed" / "done.tsv")
    found = [p.path.relative_to(tmp_path) for p in pending_files(tmp_path, 0.0, company="acme")]
    assert found == [Path("acme/site/dev/a.tsv")]


def test_a_company_sweep_does_not_even_list_the_other_companies(tmp_path, monkeypatch):
    """``--company`` walks ``<data>/<company>`` on its own: the other companies' folders are
    never listed (a sweep after one SFTP disconnection costs one company's tree)."""
    from core.layout import pending_files

    for company in ("acme", "other"):
        touch(tmp_path / company / "site" / "dev" / "a.tsv")
    listed: list[Path] = []
    real_scandir = os.scandir

    def scandir(path):
        listed.append(Path(path))
        return real_scandir(path)

    monkeypatch.setattr(os, "scandir", scandir)
    found = [p.path.relative_to(tmp_path) for p in pending_files(tmp_path, 0.0, company="acme")]
    assert found == [Path("acme/site/dev/a.tsv")]
    assert listed and all(path.is_relative_to(tmp_path / "acme") for path in listed)
