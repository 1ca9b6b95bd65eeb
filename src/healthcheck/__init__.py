"""Health checking of pool members: probes, hysteresis, shared state."""
