"""The cache tiers of a node: L1 (memory or Redis), L2 (disk), and `TieredCache` over them.

Every tier stores bytes under string keys with an absolute expiry time (unix seconds)
and a set of tags (surrogate keys, e.g. ``model:ranker`` and ``digest:<16 hex>``), and
supports purge by exact key, by key prefix and by tag.
"""

from edge.errors import EdgeError


class TierUnavailable(EdgeError):
    """A purge or flush could not reach a tier (e.g. Redis down); nothing is lost: retry."""
