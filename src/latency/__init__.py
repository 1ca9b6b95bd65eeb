"""Latency measurements for steering: collected at the edges, aggregated per client
network and edge, shared through Redis, read by the `latency` filter of geo steering.

Modules: `settings` (every knob, with its default), `nets` (the /24 or /48 a client is
counted in), `beacon` (the untrusted beacon: schema, bounds, rate limit per network),
`edge` (an edge's routes and kernel RTTs), `store` (the Redis layout, the edges'
writer and the DNS servers' follower), `table` (the figures: decayed median, minimum
samples, expiry, covering networks, bounded memory; the `LatencyView` that steering
reads, see `geodns.steering.measured`), `plugin` (`geodns serve --latency-redis`).
"""
