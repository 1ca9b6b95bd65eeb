"""Exponentially weighted moving average of a 0..1 figure (load, hit rate)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class Ewma:
    alpha: float = 0.3  # weight of a new sample
    value: float | None = None  # None until the first sample

    def add(self, sample: float) -> float:
        if self.value is None:
            self.value = sample
        else:
            self.value += self.alpha * (sample - self.value)
        return self.value
