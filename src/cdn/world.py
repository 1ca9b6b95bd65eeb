"""A world with real latency, in user space: cities, edges, and delay relays between.

The kernel here has no netem, so the delay lives in user space. Each edge node listens
on a private backend address; a relay listens on the edge's public address (the one
the zone answers) and forwards each connection to the backend, holding every chunk in
each direction for the one-way delay between the client's city and that edge:
great-circle distance at fibre speed (~200,000 km/s) times a route factor, plus a
last-mile millisecond, plus jitter, plus any anomaly active on that route. A client's
city is told by its source address (each city is one /24 on loopback, in a /16 of
its own), so clients bind their sockets to their city's addresses; the relay connects
to the backend from the client's own address, so the edge sees the client's network.

`scale` multiplies every delay (tests use a fraction; the ordering stays the same).
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import random
import time
from dataclasses import dataclass, field

from geodns.steering.distance import haversine_km

FIBRE_KM_PER_MS = 200.0  # ~200,000 km/s
ROUTE_FACTOR = 1.5  # fibre paths are longer than great circles
LAST_MILE_MS = 1.0  # one way


@dataclass(frozen=True)
class Place:
    name: str
    lat: float
    lon: float


# The example zone's edges.
EDGES = (
    Place("tokyo", 35.6895, 139.6917), Place("london", 51.5074, -0.1278),
    Place("virginia", 39.0438, -77.4874), Place("mumbai", 19.0760, 72.8777),
    Place("saopaulo", -23.5505, -46.6333), Place("sydney", -33.8688, 151.2093),
    Place("frankfurt", 50.1109, 8.6821),
)
CITIES = (
    Place("Tokyo", 35.6895, 139.6917), Place("Seoul", 37.5665, 126.9780),
    Place("Singapore", 1.3521, 103.8198), Place("Mumbai", 19.0760, 72.8777),
    Place("Sydney", -33.8688, 151.2093), Place("London", 51.5074, -0.1278),
    Place("Madrid", 40.4168, -3.7038), Place("Paris", 48.8566, 2.3522),
    Place("New York", 40.7128, -74.0060), Place("Chicago", 41.8781, -87.6298),
    Place("São Paulo", -23.5505, -46.6333), Place("Johannesburg", -26.2041, 28.0473),
)


@dataclass
class Anomaly:
    """Extra round-trip time on one (city, edge) route, from `start_s` until `end_s`
    (seconds since the world started; None: for good)."""

    city: str
    edge: str
    extra_rtt_ms: float
    start_s: float = 0.0
    end_s: float | None = None

    def active(self, t: float) -> bool:
        return self.start_s <= t and (self.end_s is None or t < self.end_s)


# Seoul's nearest edge (Tokyo) sits behind a congested route; Madrid's nearest
# (London) congests for a while.
CONGESTED = Anomaly("Seoul", "tokyo", 150.0)
TRANSIENT = Anomaly("Madrid", "london", 100.0)


@dataclass
class World:
    cities: tuple[Place, ...] = CITIES
    edges: tuple[Place, ...] = EDGES
    anomalies: list[Anomaly] = field(default_factory=lambda: [CONGESTED])
    scale: float = 1.0
    jitter: float = 0.05  # uniform jitter of up to this share of the one-way delay
    city_base: int = 20  # city i lives in 127.(city_base + i).0.0/24
    edge_net: str = "127.0.60"  # public edge addresses: edge_net.(k + 1)
    backend_net: str = "127.0.61"  # where the edge nodes listen
    started: float = field(default_factory=time.monotonic)
    rng: random.Random = field(default_factory=lambda: random.Random(7))

    def now(self) -> float:
        return time.monotonic() - self.started

    # -- addresses -----------------------------------------------------------------

    def city_network(self, city: str) -> ipaddress.IPv4Network:
        i = [c.name for c in self.cities].index(city)
        return ipaddress.IPv4Network(f"127.{self.city_base + i}.0.0/24")

    def client_address(self, city: str, index: int = 0) -> str:
        return str(self.city_network(city)[1 + index])

    def city_of(self, address: str) -> str | None:
        a = ipaddress.ip_address(address)
        for c in self.cities:
            if a in self.city_network(c.name):
                return c.name
        return None

    def edge_address(self, edge: str) -> str:
        return f"{self.edge_net}.{[e.name for e in self.edges].index(edge) + 1}"

    def backend_address(self, edge: str) -> str:
        return f"{self.backend_net}.{[e.name for e in self.edges].index(edge) + 1}"

    # -- delays --------------------------------------------------------------------

    def _place(self, places: tuple[Place, ...], name: str) -> Place:
        return next(p for p in places if p.name == name)

    def rtt_ms(self, city: str, edge: str, t: float | None = None) -> float:
        """The round-trip time of the route, without jitter (the oracle's figure)."""
        c, e = self._place(self.cities, city), self._place(self.edges, edge)
        km = haversine_km(c.lat, c.lon, e.lat, e.lon)
        rtt = 2 * (km * ROUTE_FACTOR / FIBRE_KM_PER_MS + LAST_MILE_MS)
        t = self.now() if t is None else t
        rtt += sum(a.extra_rtt_ms for a in self.anomalies
                   if a.city == city and a.edge == edge and a.active(t))
        return rtt * self.scale

    def one_way_s(self, city: str | None, edge: str) -> float:
        if city is None:  # not a client of the world (health checks): no delay
            return 0.0
        d = self.rtt_ms(city, edge) / 2
        return (d + self.rng.uniform(0, self.jitter * d)) / 1000

    def best_edge(self, city: str, t: float | None = None) -> str:
        return min((e.name for e in self.edges), key=lambda e: self.rtt_ms(city, e, t))

    def nearest_edge(self, city: str) -> str:
        c = self._place(self.cities, city)
        return min(self.edges, key=lambda e: haversine_km(c.lat, c.lon, e.lat, e.lon)).name

    # -- the zone --------------------------------------------------------------------

    def zone_yaml(self, zone: str, port: int, ttl: int = 10, margin_ms: float = 10.0) -> str:
        """A zone with two names on the same edges: `edge` (nearest, then measured
        latency) and `geo` (nearest only), and a `nets` entry locating each city."""
        members = "\n".join(
            f"      - {{name: {e.name}, ipv4: {self.edge_address(e.name)}, lat: {e.lat}, "
            f"lon: {e.lon}, health_url: \"http://{self.edge_address(e.name)}:{port}/health\"}}"
            for e in self.edges)
        nets = "\n".join(
            f"  {self.city_network(c.name)}: {{city: \"{c.name}\", lat: {c.lat}, lon: {c.lon}}}"
            for c in self.cities)
        margin = margin_ms * self.scale
        pool = (f"    ttl: {ttl}\n    health: {{interval: 2, timeout: 1, rise: 1, fall: 2}}\n"
                f"    members:\n{members}\n")
        return (
            f"zone: {zone}\nsoa: {{mname: ns1, rname: hostmaster, serial: 1, refresh: 7200, "
            "retry: 900, expire: 1209600, minimum: 60}\n"
            "records:\n  \"@\": {NS: [ns1]}\n  ns1: {A: 127.0.0.1}\n"
            "  edge: {pool: fast}\n  geo: {pool: geo}\n"
            f"pools:\n  fast:\n    chain: [nearest, {{latency: {{margin_ms: {margin:g}}}}}, "
            f"healthy, first_n]\n{pool}"
            f"  geo:\n    chain: [nearest, healthy, first_n]\n{pool}"
            f"nets:\n{nets}\n")


class Relay:
    """Forwards connections to one edge's backend, delaying both directions by the
    world's one-way delay for the client's city (asyncio TCP)."""

    def __init__(self, world: World, edge: str, port: int) -> None:
        self.world = world
        self.edge = edge
        self.port = port
        self._server: asyncio.base_events.Server | None = None
        self._tasks: set[asyncio.Task] = set()

    async def start(self) -> None:
        self._server = await asyncio.start_server(
            self._connection, self.world.edge_address(self.edge), self.port)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
        for t in list(self._tasks):
            t.cancel()
        for t in list(self._tasks):
            with contextlib.suppress(BaseException):
                await t
        if self._server is not None:
            await self._server.wait_closed()

    async def _connection(self, reader: asyncio.StreamReader,
                          writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)
        peer = writer.get_extra_info("peername")[0]
        city = self.world.city_of(peer)
        try:
            up_r, up_w = await asyncio.open_connection(
                self.world.backend_address(self.edge), self.port, local_addr=(peer, 0))
        except OSError:
            writer.close()
            return
        try:
            await asyncio.gather(self._pump(reader, up_w, city), self._pump(up_r, writer, city))
        except (OSError, asyncio.IncompleteReadError):
            pass
        finally:
            for w in (writer, up_w):
                w.close()
            if task is not None:
                self._tasks.discard(task)

    async def _pump(self, src: asyncio.StreamReader, dst: asyncio.StreamWriter,
                    city: str | None) -> None:
        """Copy src to dst, each chunk released one delay after it arrived, in order."""
        queue: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()

        async def send() -> None:
            while True:
                release, data = await queue.get()
                if not data:
                    with contextlib.suppress(OSError):
                        dst.write_eof()
                    return
                wait = release - time.monotonic()
                if wait > 0:
                    await asyncio.sleep(wait)
                dst.write(data)
                await dst.drain()

        sender = asyncio.ensure_future(send())
        last = 0.0
        try:
            while True:
                data = await src.read(65536)
                last = max(last, time.monotonic() + self.world.one_way_s(city, self.edge))
                queue.put_nowait((last, data))
                if not data:
                    break
            await sender
        finally:
            sender.cancel()
