"""One way to connect to Redis, for every Redis user of the project.

A setting is a URL in one of three forms; all give a `redis.asyncio` client that the
caller uses the same way (redis-py's own Sentinel and Cluster clients do the discovery
and follow failovers):

* ``redis://[[user]:password@]host:port[/db]`` (``rediss://`` for TLS,
  ``unix:///path/to/socket``): one server, passed to ``Redis.from_url`` as it is;
* ``redis+sentinel://[[user]:password@]host:port[,host:port...]/service[/db]``
  (``rediss+sentinel://`` for TLS to the servers): a Sentinel set; the client asks the
  sentinels for the current primary of `service` and follows its failovers. The
  credentials are the data servers'; ``?sentinel_password=`` (and
  ``sentinel_username=``) authenticate to the sentinels when they need it;
* ``redis+cluster://[[user]:password@]host:port[,host:port...]`` (``rediss+cluster://``
  for TLS): a Redis Cluster, found from any of the nodes named.

A Sentinel or Cluster URL takes redis-py's connection options in its query, by the
names and with the parsing a ``redis://`` URL has (``?socket_timeout=2&
health_check_interval=10``); an option it does not take is an error, never ignored.

A password need not be written on a command line: ``${NAME}`` in a URL is replaced by
the environment variable NAME (``redis://:${CDN_REDIS_PASSWORD}@127.0.0.1:6379/0``,
``unix://${XDG_RUNTIME_DIR}/redis.sock``).

Keys that one command or transaction touches together must share a hash slot on a
cluster: `slot_tag` makes the ``{tag}`` prefix that pins them to one.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from redis.asyncio import Redis
from redis.asyncio.cluster import ClusterNode, RedisCluster
from redis.asyncio.connection import URL_QUERY_ARGUMENT_PARSERS
from redis.asyncio.sentinel import Sentinel
from redis.exceptions import RedisClusterException, RedisError

from geocdn.hostport import HostPortError, parse_host_port
from geocdn.urls import UnsetVariable, expand

RedisClient = Redis | RedisCluster
# What a call raises when Redis, a Sentinel set or a Cluster is unreachable or in the
# middle of a failover (redis-py's cluster errors are not all RedisErrors).
REDIS_ERRORS: tuple[type[Exception], ...] = (RedisError, RedisClusterException, OSError)

_STANDALONE = {"redis", "rediss", "unix"}
_SENTINEL = {"redis+sentinel", "rediss+sentinel"}
_CLUSTER = {"redis+cluster", "rediss+cluster"}
DEFAULT_PORT = 6379
DEFAULT_SENTINEL_PORT = 26379


class RedisURLError(ValueError):
    """A Redis setting that cannot be understood; the message says what is wrong."""


@dataclass(frozen=True)
class RedisSetting:
    """A parsed Redis URL: which kind, where, and as whom."""

    kind: str  # "standalone", "sentinel" or "cluster"
    url: str = field(repr=False)  # as expanded: it may hold the password
    nodes: tuple[tuple[str, int], ...] = ()
    service: str = ""
    db: int = 0
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    tls: bool = False
    sentinel_auth: dict[str, str] = field(default_factory=dict, repr=False)
    options: dict[str, object] = field(default_factory=dict)  # from the URL's query


# The connection options a sentinel or cluster URL may set in its query, read as
# redis-py reads them from a standalone URL (?socket_timeout=2&health_check_interval=10).
URL_OPTIONS = ("socket_timeout", "socket_connect_timeout", "socket_keepalive",
               "retry_on_timeout", "max_connections", "health_check_interval",
               "ssl_check_hostname", "protocol")
SENTINEL_AUTH = ("sentinel_username", "sentinel_password")


def url_options(written: str, query: str, allowed: tuple[str, ...]) -> dict[str, object]:
    """The options of a URL's query, each read by redis-py's own parser for it; an
    option this kind of URL does not take is an error, not silently ignored."""
    options: dict[str, object] = {}
    for name, values in parse_qs(query, keep_blank_values=True).items():
        if name not in allowed:
            raise RedisURLError(f"{written!r}: unknown option ?{name}= (this kind of URL "
                                f"takes {', '.join(allowed)})")
        parser = URL_QUERY_ARGUMENT_PARSERS.get(name, str)
        try:
            options[name] = parser(values[-1])
        except (TypeError, ValueError):
            raise RedisURLError(f"{written!r}: ?{name}= has an invalid value") from None
    return options


def parse(written: str) -> RedisSetting:
    """The setting `written` names; errors quote it as written (no expanded password)."""
    try:
        url = expand(written, "the Redis URL")
    except UnsetVariable as exc:
        raise RedisURLError(str(exc)) from None
    scheme = url.split("://", 1)[0].lower() if "://" in url else ""
    if scheme in _STANDALONE:
        return RedisSetting("standalone", url)
    if scheme not in _SENTINEL | _CLUSTER:
        raise RedisURLError(
            f"{written!r}: a Redis URL starts with redis://, rediss://, unix://, "
            "redis+sentinel:// or redis+cluster://")
    parts = urlsplit(url)
    credentials, _, hosts = parts.netloc.rpartition("@")
    username, _, password = credentials.partition(":")
    default_port = DEFAULT_SENTINEL_PORT if scheme in _SENTINEL else DEFAULT_PORT
    try:
        nodes = tuple(parse_host_port(h, default_port) for h in hosts.split(",") if h)
    except HostPortError as exc:
        raise RedisURLError(f"{written!r}: {exc}") from None
    if not nodes:
        raise RedisURLError(f"{written!r}: name at least one host:port")
    tls = scheme.startswith("rediss")
    cluster = RedisSetting("cluster", url, nodes, username=unquote(username) or None,
                           password=unquote(password) or None, tls=tls)
    path = [p for p in parts.path.split("/") if p]
    if scheme in _CLUSTER:
        options = url_options(written, parts.query, ("db", *URL_OPTIONS))
        if path or options.pop("db", 0) != 0:
            raise RedisURLError(f"{written!r}: a cluster has only database 0; drop the path")
        return replace(cluster, options=options)
    if not path or len(path) > 2:
        raise RedisURLError(f"{written!r}: give the Sentinel service name as the path "
                            "(redis+sentinel://host:port/SERVICE[/DB])")
    try:
        db = int(path[1]) if len(path) == 2 else 0
    except ValueError:
        raise RedisURLError(f"{written!r}: the database must be a number") from None
    options = url_options(written, parts.query, ("db", *URL_OPTIONS, *SENTINEL_AUTH))
    db = int(str(options.pop("db", db)))
    auth = {k.removeprefix("sentinel_"): str(options.pop(k)) for k in SENTINEL_AUTH
            if k in options}
    return replace(cluster, kind="sentinel", service=path[0], db=db, sentinel_auth=auth,
                   options=options)


def connect(url: str, **options: Any) -> RedisClient:
    """A client for `url`; `options` (timeouts, decode_responses, retry...) go to every
    connection it makes."""
    setting = parse(url)
    if setting.kind == "standalone":
        return Redis.from_url(setting.url, **options)
    auth: dict[str, Any] = {"username": setting.username, "password": setting.password,
                            "ssl": setting.tls}
    options = options | setting.options  # the URL's own options win, as for redis://
    if setting.kind == "cluster":
        nodes = [ClusterNode(host, port) for host, port in setting.nodes]
        return RedisCluster(startup_nodes=nodes, **auth, **options)
    sentinel_options = {k: v for k, v in options.items()
                        if k in ("socket_timeout", "socket_connect_timeout")}
    sentinel = Sentinel(list(setting.nodes), sentinel_kwargs=sentinel_options
                        | setting.sentinel_auth)
    client: Redis = sentinel.master_for(setting.service, db=setting.db, **auth, **options)
    return client


def slot_tag(prefix: str) -> str:
    """`prefix` as a cluster hash tag: keys that start with it share one slot."""
    return prefix if prefix.startswith("{") else "{" + prefix + "}"
