"""The deployment files are valid: docker-compose.yml against the Compose Specification's
JSON schema (no Docker engine here), the Kubernetes manifests by their structure, and
both by what a schema cannot see: files, ports, references, zones and commands that the
project's own loaders and CLIs accept."""

from __future__ import annotations

import copy
import ipaddress
import json
import re
import shlex
import subprocess
import sys
import time
from functools import cache
from pathlib import Path

import jsonschema
import pytest
import redis
import yaml

from cdn.processes import stop_process
from cdn.redis_server import free_port
from edge.config import load_config
from geocdn.redis_url import parse
from geodns.zonefile import load_zones

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "docker-compose.yml"
K8S = ROOT / "deploy" / "k8s"
BIN = Path(sys.executable).parent


@cache
def compose() -> dict:
    return yaml.safe_load(COMPOSE.read_text())


def compose_errors(doc: dict) -> list[str]:
    schema = json.loads((ROOT / "deploy" / "schema" / "compose-spec.json").read_text())
    validator = jsonschema.Draft7Validator(schema)
    return [f"{e.json_path}: {e.message}" for e in validator.iter_errors(doc)]


def test_compose_file_matches_the_compose_spec_schema():
    assert compose_errors(compose()) == []


def test_the_schema_check_rejects_broken_compose_files():
    doc = copy.deepcopy(compose())
    doc["services"]["origin"]["restart"] = ["always"]  # must be a string
    doc["services"]["edge-tokyo"]["ports"] = "8001:8000"  # must be a list
    doc["services"]["redis"]["helthcheck"] = {}  # misspelt key
    errors = compose_errors(doc)
    assert any("restart" in e for e in errors)
    assert any("ports" in e for e in errors)
    assert any("helthcheck" in e for e in errors)


def test_compose_has_the_whole_network():
    services = compose()["services"]
    commands = {name: " ".join(svc.get("command", [])) for name, svc in services.items()}
    assert "redis" in services and "prometheus" in services
    assert "edge serve" in commands["origin"] and "--upstream" not in commands["origin"]
    edges = [n for n, c in commands.items() if "edge serve" in c and "--upstream" in c]
    assert len(edges) >= 3
    assert len([n for n, c in commands.items() if "geodns serve" in c]) == 2
    assert any(c.startswith("healthcheck ") for c in commands.values())


def test_compose_references_exist_and_are_consistent():
    doc = compose()
    services = doc["services"]
    subnet = ipaddress.ip_network(doc["networks"]["cdn"]["ipam"]["config"][0]["subnet"])
    addresses, host_ports = [], []
    for name, svc in services.items():
        build = svc.get("build")
        if build:
            assert (ROOT / build["context"] / build["dockerfile"]).is_file(), name
        for volume in svc.get("volumes", []):
            source = volume.split(":")[0]
            assert source.startswith("./"), f"{name}: {volume} is not a repository path"
            assert (ROOT / source).exists(), f"{name}: {source} does not exist"
        depends = svc.get("depends_on", [])
        for target in depends if isinstance(depends, list) else depends.keys():
            assert target in services, f"{name} depends on unknown service {target}"
        for net in (svc.get("networks") or {}):
            assert net in doc["networks"], f"{name}: unknown network {net}"
        nets = svc.get("networks")
        if isinstance(nets, dict) and nets.get("cdn"):
            address = ipaddress.ip_address(nets["cdn"]["ipv4_address"])
            assert address in subnet, name
            addresses.append(address)
        for port in svc.get("ports", []):
            host_ports.append(tuple(port.rsplit(":", 1)[0].split(":")) + (port.split("/")[-1],))
    assert len(addresses) == len(set(addresses)), "duplicate static addresses"
    assert len(host_ports) == len(set(host_ports)), "a host port is published twice"


def listen_port(svc: dict) -> int:
    text = " ".join(svc.get("command", []))
    found = re.findall(r"--(?:listen|http) 0\.0\.0\.0:(\d+)", text)
    return {int(p) for p in found}


def test_prometheus_scrapes_services_on_their_ports():
    services = compose()["services"]
    prom = yaml.safe_load((ROOT / "deploy" / "prometheus.yml").read_text())
    targets = [t for job in prom["scrape_configs"] for sc in job["static_configs"]
               for t in sc["targets"]]
    assert len(targets) >= 7
    for target in targets:
        host, port = target.split(":")
        assert host in services, f"scrape target {target}: no such service"
        assert int(port) in listen_port(services[host]), f"{host} does not listen on {port}"
    scraped = {t.split(":")[0] for t in targets}
    assert scraped == set(services) - {"redis", "prometheus"}


def test_compose_zone_loads_and_points_at_the_edge_containers():
    zones, problems = load_zones(ROOT / "deploy" / "compose" / "zones")
    assert problems == []
    pool = zones["cdn.example."].steering.pools["edges"]
    services = compose()["services"]
    for member in pool.members:
        svc = services[f"edge-{member.name}"]
        assert member.ipv4 == (svc["networks"]["cdn"]["ipv4_address"],)
        assert member.health_url == f"http://{member.ipv4[0]}:8000/health"


def test_the_compose_zone_steers_the_page_s_dig_line():
    """docs/deployment.md's dig line needs the containers; what it says the answer is
    (`# → ADDRESS (MEMBER)`) is what the DNS server decides on the compose zone for that
    ECS, asked without them (`geodns explain` probes nothing)."""
    text = (ROOT / "docs" / "deployment.md").read_text()
    (ecs, address, member), = re.findall(
        r"^dig @127\.0\.0\.1 -p 5353 edge\.cdn\.example A \+subnet=(\S+) +# → (\S+) \((\w+)\)$",
        text, re.M)
    out = subprocess.run([str(BIN / "geodns"), "explain", "edge.cdn.example", "--ecs", ecs,
                          "--zones", str(ROOT / "deploy" / "compose" / "zones")],
                         capture_output=True, text=True, check=True, timeout=60).stdout
    assert f"pick: {member} -> {address}" in out, out


@cache
def cli_help(*argv: str) -> str:
    return subprocess.run([str(BIN / argv[0]), *argv[1:], "--help"], capture_output=True,
                          text=True, check=True).stdout


def check_flags(argv: list[str]) -> None:
    """Every --flag of a command is one the real program documents in its --help."""
    if argv[0] == "sh":
        argv = shlex.split(argv[2].split("&&")[-1].replace("exec ", "").replace("$$", "$"))
    prog = [argv[0], argv[1]] if argv[0] in ("edge", "geodns") else [argv[0]]
    helptext = cli_help(*prog)
    for flag in (a.split("=")[0] for a in argv if a.startswith("--")):
        assert re.search(rf"(?<![\w-]){re.escape(flag)}(?![\w-])", helptext), (
            f"{' '.join(prog)}: no {flag}")


@pytest.mark.parametrize("service", ["origin", "edge-tokyo", "healthcheck", "geodns-1"])
def test_compose_commands_use_real_flags(service):
    check_flags(compose()["services"][service]["command"])


# -- Kubernetes ------------------------------------------------------------------------


@cache
def manifests() -> list[dict]:
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    docs = []
    for name in kustomization["resources"]:
        docs += [d for d in yaml.safe_load_all((K8S / name).read_text()) if d]
    return docs


def by_kind(kind: str) -> dict[str, dict]:
    return {d["metadata"]["name"]: d for d in manifests() if d["kind"] == kind}


def workloads() -> dict[str, dict]:
    """Deployments and StatefulSets by name (the names are unique across both)."""
    return by_kind("Deployment") | by_kind("StatefulSet")


def test_k8s_manifests_have_the_expected_objects():
    kinds = {(d["kind"], d["metadata"]["name"]) for d in manifests()}
    for expected in [("StatefulSet", "edge"), ("Service", "edge"), ("ConfigMap", "edge-config"),
                     ("PodDisruptionBudget", "edge"), ("HorizontalPodAutoscaler", "edge"),
                     ("Deployment", "geodns"), ("Service", "geodns"),
                     ("PodDisruptionBudget", "geodns"),
                     ("Deployment", "healthcheck"), ("StatefulSet", "redis"),
                     ("Service", "redis"), ("StatefulSet", "origin"), ("Service", "origin")]:
        assert expected in kinds


@pytest.mark.parametrize("version", ["1.33.0", "1.37.0"])
def test_k8s_manifests_pass_strict_schema_validation(version):
    """kubernetes-validate --strict: every object against that release's schemas,
    unknown fields rejected."""
    files = [str(K8S / name) for name in
             yaml.safe_load((K8S / "kustomization.yaml").read_text())["resources"]]
    out = subprocess.run([str(BIN / "kubernetes-validate"), "--strict", "--quiet",
                          "-k", version, *files], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr


def test_k8s_operations_points():
    """What a Kubernetes operator needs on day one, read off the rendered objects."""
    pods = {name: w["spec"]["template"] for name, w in workloads().items()}
    for name, template in pods.items():
        for c in template["spec"]["containers"]:
            where = f"{name}/{c['name']}"
            assert "livenessProbe" in c and "readinessProbe" in c, where
            assert {"requests", "limits"} <= c["resources"].keys(), where
            assert "memory" in c["resources"]["limits"], where
            assert c["imagePullPolicy"] == "IfNotPresent", where  # a locally built image
            for env in c.get("env", []):  # tokens come from Secrets, never literals
                if "TOKEN" in env["name"] or "PASSWORD" in env["name"]:
                    assert "secretKeyRef" in env["valueFrom"], where
            assert not any("token" in a.lower() and "file" not in a.lower()
                           for a in c.get("command", []) + c.get("args", [])), where
        if template["spec"]["containers"][0]["image"].startswith("geocdn"):
            notes = template["metadata"]["annotations"]
            ports = {str(p["containerPort"]) for c in template["spec"]["containers"]
                     for p in c.get("ports", [])}
            assert notes["prometheus.io/scrape"] == "true" and notes["prometheus.io/port"] \
                in ports, name

    edge = workloads()["edge"]
    (container,) = edge["spec"]["template"]["spec"]["containers"]
    assert container["readinessProbe"]["httpGet"]["path"] == "/health"  # 503 draining
    for kind in ("PodDisruptionBudget", "HorizontalPodAutoscaler"):
        target = by_kind(kind)["edge"]["spec"]
        ref = target.get("scaleTargetRef") or {}
        assert ref.get("name", "edge") == "edge" and ref.get("kind", "StatefulSet") == \
            "StatefulSet"
    claims = {t["metadata"]["name"] for t in edge["spec"]["volumeClaimTemplates"]}
    config = yaml.safe_load(by_kind("ConfigMap")["edge-config"]["data"]["edge.yaml"])
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    assert mounts[config["cache_dir"]] in claims  # L2 survives a rescheduled pod
    redis = workloads()["redis"]
    (server,) = redis["spec"]["template"]["spec"]["containers"]
    assert "--appendonly" in server["args"] and \
        server["args"][server["args"].index("--appendonly") + 1] == "yes"
    assert redis["spec"]["volumeClaimTemplates"]


def test_every_edge_serves_grpc_on_8001_beside_http_on_8000():
    """Triton's ports in every edge container: compose publishes both on loopback, the
    Kubernetes config turns gRPC on and both Services expose it; the probes stay on
    HTTP."""
    services = compose()["services"]
    edges = [name for name in services if name.startswith("edge-")]
    assert len(edges) >= 3
    for name in edges:
        argv = services[name]["command"]
        assert argv[argv.index("--listen") + 1] == "0.0.0.0:8000", name
        assert argv[argv.index("--grpc-listen") + 1] == "0.0.0.0:8001", name
        assert sorted(p.rsplit(":", 1)[1] for p in services[name]["ports"]) == \
            ["8000", "8001"], name
    config = yaml.safe_load(by_kind("ConfigMap")["edge-config"]["data"]["edge.yaml"])
    assert (config["listen"], config["grpc_listen"]) == ("0.0.0.0:8000", "0.0.0.0:8001")
    (container,) = workloads()["edge"]["spec"]["template"]["spec"]["containers"]
    assert {p["name"]: p["containerPort"] for p in container["ports"]} == \
        {"http": 8000, "grpc": 8001}
    for name in ("edge", "edge-pods"):
        ports = {p["targetPort"]: p for p in by_kind("Service")[name]["spec"]["ports"]}
        assert ports.keys() == {"http", "grpc"}, name
        assert ports["grpc"]["port"] == 8001, name
    for probe in ("readinessProbe", "livenessProbe"):
        assert container[probe]["httpGet"]["port"] == "http"


def redis_urls(text: str) -> list[str]:
    return re.findall(r"rediss?(?:\+\w+)?://[^\s\"',\]]+", text)


def test_k8s_redis_requires_the_secret_password_and_every_client_has_it():
    """Redis takes its password from the Secret redis-auth (never from its command
    line); every client's Redis URL names ${CDN_REDIS_PASSWORD}, which the client's
    environment takes from the same Secret."""
    wanted = {"name": "redis-auth", "key": "password"}
    assert "password" in by_kind("Secret")["redis-auth"]["stringData"]
    (server,) = workloads()["redis"]["spec"]["template"]["spec"]["containers"]
    env = {e["name"]: e["valueFrom"]["secretKeyRef"] for e in server["env"]}
    assert env["REDISCLI_AUTH"] == wanted  # the server's and its probe's password
    assert "requirepass \"$REDISCLI_AUTH\"" in server["command"][-2]
    assert not any("requirepass" in a for a in server["args"])
    config_urls = redis_urls(by_kind("ConfigMap")["edge-config"]["data"]["edge.yaml"])
    clients = 0
    for name, workload in workloads().items():
        for c in workload["spec"]["template"]["spec"]["containers"]:
            urls = redis_urls(" ".join(c.get("command", []) + c.get("args", [])))
            if c["name"] == "edge":
                urls += config_urls
            if not urls:
                continue
            clients += 1
            assert all("://:${CDN_REDIS_PASSWORD}@redis:6379/" in u for u in urls), urls
            secrets = {e["name"]: e.get("valueFrom", {}).get("secretKeyRef")
                       for e in c.get("env", [])}
            assert secrets.get("CDN_REDIS_PASSWORD") == wanted, f"{name}/{c['name']}"
    assert clients == 4  # origin, edge, geodns, healthcheck


def test_k8s_redis_command_runs_with_the_password(system_program, tmp_path, monkeypatch):
    """The Redis container's own command and arguments, run here by Debian's
    redis-server on a free port: a client without the password is refused, a client
    with the manifests' URL form and the password gets in."""
    system_program("redis-server", "redis-server")
    (server,) = workloads()["redis"]["spec"]["template"]["spec"]["containers"]
    port = free_port()
    args = [str(tmp_path) if a == "/data" else a for a in server["args"]]  # its volume
    argv = server["command"] + args + ["--port", str(port), "--bind", "127.0.0.1"]
    proc = subprocess.Popen(argv, env={"PATH": "/usr/bin:/bin", "REDISCLI_AUTH": "pw$1 x"},
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        anonymous = redis.Redis(host="127.0.0.1", port=port, socket_timeout=5)
        deadline = time.monotonic() + 30
        while True:
            try:
                anonymous.ping()
                raise AssertionError("Redis answered without the password")
            except redis.AuthenticationError:
                break
            except redis.ConnectionError:
                assert proc.poll() is None and time.monotonic() < deadline, "no Redis"
                time.sleep(0.1)
        monkeypatch.setenv("CDN_REDIS_PASSWORD", "pw$1 x")
        url = "redis://:${CDN_REDIS_PASSWORD}@redis:6379/0".replace("redis:6379",
                                                                    f"127.0.0.1:{port}")
        client = redis.Redis.from_url(parse(url).url, socket_timeout=5)
        assert client.ping() and client.config_get("appendonly") == {"appendonly": "yes"}
        client.close()
        anonymous.close()
    finally:
        stop_process(proc)
    assert not any("pw$1" in a for a in argv)  # the password is on no command line


def test_k8s_references_resolve():
    deployments, configmaps = workloads(), by_kind("ConfigMap")
    secrets = by_kind("Secret")
    for name, svc in by_kind("Service").items():
        pods = [d for d in deployments.values()
                if svc["spec"]["selector"].items()
                <= d["spec"]["template"]["metadata"]["labels"].items()]
        assert pods, f"service {name} selects no workload"
        port_names = {p["name"] for d in pods for c in d["spec"]["template"]["spec"]["containers"]
                      for p in c.get("ports", [])}
        for port in svc["spec"]["ports"]:
            assert port["targetPort"] in port_names, f"service {name}: {port['targetPort']}"
    for name, dep in deployments.items():
        spec = dep["spec"]
        assert spec["selector"]["matchLabels"].items() <= spec["template"]["metadata"][
            "labels"].items(), name
        pod = spec["template"]["spec"]
        volumes = {v["name"]: v for v in pod.get("volumes", [])} | {
            t["metadata"]["name"]: t for t in spec.get("volumeClaimTemplates", [])}
        for c in pod.get("initContainers", []) + pod["containers"]:
            for mount in c.get("volumeMounts", []):
                assert mount["name"] in volumes, f"{name}/{c['name']}: {mount['name']}"
            for env in c.get("env", []):
                ref = env.get("valueFrom", {}).get("secretKeyRef")
                if ref:
                    assert ref["key"] in secrets[ref["name"]]["stringData"]
            if c["image"].startswith("geocdn"):
                check_flags([a.replace("$(GEODNS_ADMIN_TOKEN)", "token")
                             for a in c["command"] + c.get("args", [])])
        for v in volumes.values():
            if "configMap" in v:
                assert v["configMap"]["name"] in configmaps, f"{name}: {v['configMap']}"


def test_k8s_configs_load_with_the_real_loaders(tmp_path):
    zones_dir = tmp_path / "zones"
    zones_dir.mkdir()
    for fname, text in by_kind("ConfigMap")["geodns-zones"]["data"].items():
        (zones_dir / fname).write_text(text)
    zones, problems = load_zones(zones_dir)
    assert problems == [] and "cdn.example." in zones
    edge_file = tmp_path / "edge.yaml"
    edge_file.write_text(by_kind("ConfigMap")["edge-config"]["data"]["edge.yaml"])
    config = load_config(edge_file)
    assert config.upstream == "http://origin:8000" and config.l1 == "redis"


def test_every_deployment_runs_rate_limiting_at_the_documented_rates():
    """`cdn up`, docker compose and Kubernetes start geodns with the same RRL flags,
    the ones docs/dns.md gives."""
    from cdn.stack import RRL_ARGS, Stack, StackConfig

    wanted = " ".join(RRL_ARGS)
    assert "--rrl-rate" in RRL_ARGS
    stack = Stack(StackConfig(zones=ROOT / "zones"))
    assert wanted in " ".join(stack.geodns_child().argv)
    for name in ("geodns-1", "geodns-2"):
        assert wanted in " ".join(compose()["services"][name]["command"])
    (container,) = workloads()["geodns"]["spec"]["template"]["spec"]["containers"]
    assert wanted in " ".join(container["args"])
    assert f"`{wanted}`" in (ROOT / "docs" / "dns.md").read_text()
