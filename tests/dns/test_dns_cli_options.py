"""`geodns serve` refuses out-of-range options with a message naming the option,
before anything starts (they used to be taken silently, e.g. --workers 0 as 1)."""

from __future__ import annotations

import pytest

from geodns.cli import main


@pytest.mark.parametrize(("option", "value", "message"), [
    ("--workers", "0", "0 must be at least 1"),
    ("--workers", "1.5", "'1.5' is not an integer"),
    ("--tcp-max-connections", "0", "0 must be at least 1"),
    ("--tcp-idle-timeout", "-1", "-1 must be above 0"),
    ("--tcp-idle-timeout", "nan", "'nan' is not a number"),
    ("--rrl-rate", "-5", "-5 must be at least 0"),
    ("--rrl-nxdomain-rate", "-1", "-1 must be at least 0"),
    ("--rrl-error-rate", "x", "'x' is not a number"),
    ("--rrl-slip", "-1", "-1 must be at least 0"),
    ("--rrl-window", "0", "0 must be above 0"),
])
def test_bad_option_values_are_refused(capsys, option, value, message):
    with pytest.raises(SystemExit) as exit_:
        main(["serve", "--zones", "zones", option, value])
    assert exit_.value.code == 2
    assert f"argument {option}: {message}" in capsys.readouterr().err


def test_abbreviated_options_are_refused(capsys):
    """`--workers` is read before parsing (to set up multiprocess metrics), so an
    abbreviation such as `--work 2` would start workers whose counters nobody sums."""
    with pytest.raises(SystemExit) as exit_:
        main(["serve", "--zones", "zones", "--work", "2"])
    assert exit_.value.code == 2
    assert "unrecognized arguments: --work 2" in capsys.readouterr().err
