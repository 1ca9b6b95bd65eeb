"""Asymmetric up/down hysteresis, after gdnsd's `down_thresh` / `ok_thresh` / `up_thresh`.

* UP (or UNKNOWN) goes DOWN after `fall` failures that need not be consecutive; a streak
  of `reset` successes in a row clears the failure count. So a target that loses one
  probe in three (two successes between failures) never goes down, while a dead one
  goes down on its `fall`-th failed probe.
* DOWN comes back UP only after `rise` successes in a row.
* UNKNOWN (no result yet) becomes UP on its first success, DOWN like UP does.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class Hysteresis:
    fall: int = 3
    reset: int = 2
    rise: int = 4
    up: bool | None = None  # None: UNKNOWN
    failures: int = 0  # counted while UP or UNKNOWN
    streak: int = 0  # successes in a row

    def record(self, ok: bool) -> bool:
        """Count one probe result; True when the up/down state changed."""
        if ok:
            self.streak += 1
            if self.up is None or (self.up is False and self.streak >= self.rise):
                self.up, self.failures = True, 0
                return True
            if self.up and self.streak >= self.reset:
                self.failures = 0
            return False
        self.streak = 0
        if self.up is False:
            return False
        self.failures += 1
        if self.failures >= self.fall:
            self.up, self.failures = False, 0
            return True
        return False

    @property
    def changing(self) -> bool:
        """Results are being counted towards a change (or there is no state yet)."""
        if self.up is None:
            return True
        return self.failures > 0 if self.up else self.streak > 0
