"""Model distribution and cache invalidation: the origin's content-addressed store and
admin API, the Redis Streams announcement channel, and the edges' rollout agent."""
