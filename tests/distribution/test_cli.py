"""The operator commands, run as real processes against a running origin or a store."""

from __future__ import annotations

import asyncio
import os
import sys

from disttest import TOKEN


async def run_cli(*args: str, token: str | None = TOKEN) -> tuple[int, str, str]:
    env = dict(os.environ)
    env.pop("EDGE_ADMIN_TOKEN", None)
    if token:
        env["EDGE_ADMIN_TOKEN"] = token
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "edge.distribution", *args, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await proc.communicate()
    return proc.returncode, out.decode(), err.decode()


async def test_publish_list_rollback_purge_against_a_running_origin(origin, model_files):
    where = ("--origin", origin.url)
    rc, out, err = await run_cli("publish", str(model_files.v1), "--name", "ranker",
                                 "--version", "1", "--activate", *where)
    assert rc == 0, err
    assert "published" in out and "activated; announced: True" in out
    rc, out, err = await run_cli("publish", str(model_files.last_layer), "--name", "ranker",
                                 "--version", "2", "--int8", "--activate", *where)
    assert rc == 0, err
    assert "delta from 1" in out and "int8:" in out and "spearman" in out
    rc, out, _ = await run_cli("models", "list", *where)
    assert "ranker: current 2" in out and "rollback to 1" in out
    rc, out, _ = await run_cli("models", "rollback", "ranker", *where)
    assert rc == 0 and '"current": "1"' in out
    rc, out, _ = await run_cli("purge", "--tag", "model:ranker", *where)
    assert rc == 0 and '"announced": true' in out
    assert origin.store.pointer("ranker").current == "1"


async def test_wrong_token_and_bad_names_fail_cleanly(origin, model_files):
    rc, _, err = await run_cli("models", "rollback", "ranker", "--origin", origin.url,
                               token="wrong")
    assert rc == 1 and "wrong admin token" in err
    rc, _, err = await run_cli("publish", str(model_files.v1), "--name", "../../x",
                               "--version", "1", "--origin", origin.url)
    assert rc == 1 and "invalid model name" in err
    assert origin.store.models() == []


async def test_direct_store_mode(tmp_path, model_files, redis_server):
    store = str(tmp_path / "store")
    rc, out, err = await run_cli("publish", str(model_files.v1), "--name", "ranker",
                                 "--version", "1", "--activate", "--store", store,
                                 "--redis", redis_server.url, token=None)
    assert rc == 0 and "announced: True" in out, err
    rc, out, err = await run_cli("models", "rollback", "ranker", "--store", store, token=None)
    assert rc == 1 and "no earlier version" in err
