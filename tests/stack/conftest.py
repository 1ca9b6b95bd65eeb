"""The whole network on loopback, started once for the stack tests by the launcher code
that `cdn up` uses, on free ports so it never meets a stack a user is running."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from cdn.redis_server import free_port
from cdn.stack import Stack, StackConfig

ROOT = Path(__file__).resolve().parents[2]
POOL_TTL = 4  # the example pool's 30 s TTL, shortened so the failover test is quick


def zones_on_port(directory: Path, port: int, members: list[str] | None = None) -> Path:
    """The example zone with every edge on `port` (and optionally only some members)."""
    doc = yaml.safe_load((ROOT / "zones" / "cdn.example.yaml").read_text())
    pool = doc["pools"]["edges"]
    pool["ttl"] = POOL_TTL
    if members is not None:
        pool["members"] = [m for m in pool["members"] if m["name"] in members]
        doc["nets"] = {net: v for net, v in doc.get("nets", {}).items() if "members" not in v}
    for m in pool["members"]:
        m["health_url"] = f"http://{m['ipv4']}:{port}/health"
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "cdn.example.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))
    return directory


def stack_config(base: Path, members: list[str] | None = None) -> StackConfig:
    port = free_port()
    return StackConfig(
        zones=zones_on_port(base / "zones", port, members),
        run_dir=base / "run",
        dns=f"127.0.0.1:{free_port()}",
        http=f"127.0.0.1:{free_port()}",
        origin=f"127.0.9.1:{port}",
        admin_token="stack-test-token",
    )


@pytest.fixture(scope="session")
def stack(tmp_path_factory):
    running = Stack(stack_config(tmp_path_factory.mktemp("stack"))).start()
    yield running
    running.stop()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """A whole stack starts, runs and stops in these tests: on a loaded machine that can
    take minutes, so their deadline (for a hung test only) is longer than the default."""
    here = Path(__file__).parent
    for item in items:
        if here in item.path.parents:
            item.add_marker(pytest.mark.timeout(600))
