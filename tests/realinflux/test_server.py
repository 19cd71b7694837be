"""How the tier finds influxd, and the v2 adapter's own answers (no influxd needed)."""

from __future__ import annotations

import pytest

from tests.realinflux import server
from tests.realinflux.server import InfluxdUnavailableError, _duration_seconds


def test_without_influxd_and_without_root_the_tier_says_why(monkeypatch):
    monkeypatch.setattr(server.shutil, "which", lambda name: None)
    monkeypatch.setattr(server.os, "geteuid", lambda: 1000)
    with pytest.raises(InfluxdUnavailableError, match=r"cannot be installed \(not root\)"):
        server.find_influxd()


def test_without_apt_get_the_tier_says_why(monkeypatch):
    monkeypatch.setattr(server.shutil, "which", lambda name: None)
    monkeypatch.setattr(server.os, "geteuid", lambda: 0)
    with pytest.raises(InfluxdUnavailableError, match=r"\(no apt-get\)"):
        server.find_influxd()


@pytest.mark.parametrize(
    ("text", "seconds"), [("0s", 0), ("1h0m0s", 3600), ("87600h0m0s", 315_360_000)]
)
def test_influxd_durations_are_read_in_seconds(text, seconds):
    assert _duration_seconds(text) == seconds
