"""Health checking of pool members: probes, hysteresis, shared state.

Using it from a DNS server (this is what `geodns serve` does through `plugin`)::

    from healthcheck.service import HealthService

    service = HealthService(
        {origin: zone.steering.pools for origin, zone in zones.items()},
        redis_url=None,          # or "redis://...": combine the checkers' votes
        vantage=None,            # with Redis: also publish our own probes as this name
        overrides_path="var/health-overrides.yaml",
    )
    for origin, zone in zones.items():
        zone.steering.set_health(service.view_for(origin))   # a geodns.steering.health.HealthView
    await service.start()        # probes begin (one per distinct target)
    ...
    service.update_targets(new_pools_by_zone)   # after each zone reload
    service.reload_overrides()                  # on SIGHUP (file changes are watched too)
    await service.stop()

What a zone's view (`ZoneHealthView`) offers the answer path:

* `get(pool, member) -> MemberHealth` and `generation` (the `HealthView` contract);
* `settled(pool)`: False while the pool's members are UNKNOWN (no verdict yet) and
  the pool's `settle` deadline (default 2 s after start or reload) has not passed.
  The server must not answer from such a pool (it answers SERVFAIL, so resolvers
  retry); `await view.wait_settled(pool)` and `await service.settled(timeout)` wait;
* `ttl_for(pool, ttl, unsteady)`: the answer TTL - the pool's `min_ttl` for an answer
  that an unsteady member (DOWN, UNKNOWN or changing: `MemberHealth.unsteady`) is part
  of, else `max_ttl` (default: the pool's own `ttl`). Steering decides per answer.

Admin HTTP routes: `admin.add_health_routes(app, service, token)`. The standalone
checker: `cli` (the `healthcheck` command). Modules: `probes`, `hysteresis`,
`smoothing` (EWMA), `checks` (one target's state), `overrides`, `quorum`, `shared`
(Redis), `lag` (how late this process runs: a stalled checker's timeouts do not
count), `follow` (`--workers`: the workers answer from the parent's verdicts),
`service`, `admin`, `metrics`, `plugin`, `zonefiles`. The service also runs each pool
member's shed controller (`geodns.steering.shedding`) and publishes its fraction.

The contract with `geodns` belongs to steering: `geodns.steering.health` (`HealthView`,
`MemberHealth`, `Status`) and `geodns.steering.health_settings` (a pool's `health:`
settings and their defaults). Dependencies point one way: this package imports them,
steering never imports this package.
"""
