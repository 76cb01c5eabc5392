"""Every collector setting is documented, and bad settings are refused clearly."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from ingest.settings import SETTINGS, Setting, add_arguments, config_from, seconds

README = (Path(__file__).parent.parent / "README.md").read_text()


@pytest.mark.parametrize("setting", SETTINGS, ids=lambda s: s.name)
def test_every_setting_is_in_the_readme(setting: Setting) -> None:
    for flag in setting.flags:
        assert f"`{flag}`" in README
    assert f"`{setting.env}`" in README


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    return parser.parse_args(list(argv))


def test_kuberay_flags_mean_the_same() -> None:
    ours = config_from(parse("--lake", "x", "--cluster", "c", "--port", "9000", "--role", "head"))
    theirs = config_from(
        parse("--lake", "x", "--ray-cluster-name", "c", "--events-port", "9000", "--role", "Head")
    )
    assert ours == theirs


def test_environment_variables_set_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RAYLAKE_LAKE", "s3://bucket/lake")
    monkeypatch.setenv("RAYLAKE_CLUSTER", "raycluster-a")
    monkeypatch.setenv("RAYLAKE_FLUSH_INTERVAL", "500ms")
    config = config_from(parse())
    assert (config.lake, config.cluster, config.flush_interval) == (
        "s3://bucket/lake",
        "raycluster-a",
        0.5,
    )


def test_durations() -> None:
    assert [seconds(t) for t in ("10s", "500ms", "2m", "1h", "3")] == [10, 0.5, 120, 3600, 3]
    with pytest.raises(ValueError, match="duration"):
        seconds("soon")


def test_missing_and_bad_settings_are_named() -> None:
    with pytest.raises(ValueError, match="--lake, --cluster"):
        config_from(parse())
    with pytest.raises(ValueError, match="--role 'leader'"):
        config_from(parse("--lake", "x", "--cluster", "c", "--role", "leader"))
