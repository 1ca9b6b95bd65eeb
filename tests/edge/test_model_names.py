"""A model name or version that could not be a folder name is refused (400) before it
reaches a path on disk or the upstream's URL."""

from __future__ import annotations


async def origin_requests(http, url: str) -> float:
    """Requests the node has answered, scrapes of /metrics left out."""
    async with http.get(f"{url}/metrics") as r:
        text = await r.text()
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith("edge_http_requests_total{")
               and 'endpoint="metrics"' not in line)


async def test_traversing_model_names_never_reach_the_upstream(start_node, http, models_dir):
    origin = await start_node(models_dir=models_dir)
    edge = await start_node(upstream=origin.url)
    before = await origin_requests(http, origin.url)
    for name in ("x/../../../dist/v1/models", "../ranker", "ranker\n", ".hidden", "a" * 200):
        async with http.post(f"{edge.url}/predict",
                             json={"model": name, "features": [0.0] * 32}) as r:
            assert r.status == 400, name
            assert "invalid model name" in (await r.json())["error"]
    async with http.post(f"{edge.url}/predict", json={"features": [0.0] * 32,
                                                      "version": "../1"}) as r:
        assert r.status == 400 and "invalid version" in (await r.json())["error"]
    for path in ("/v2/models/x%2F..%2F..%2F..%2Fdist%2Fv1%2Fmodels",
                 "/v2/models/..%2F..%2Fdist/ready", "/v2/models/ranker/versions/..%2F1"):
        async with http.get(edge.url + path) as r:
            assert r.status in (400, 404), path
    assert await origin_requests(http, origin.url) == before  # nothing was forwarded
