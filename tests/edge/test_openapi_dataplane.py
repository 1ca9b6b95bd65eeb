"""The V2 dataplane OpenAPI spec that MLServer's wheel ships
(``mlserver/rest/openapi/dataplane.json``), run with schemathesis against a live edge (in
front of an origin): no 5xx, every body valid JSON (no bare NaN), and every documented
answer matching its schema.

The wheel is fetched with ``pip download`` (no dependencies, nothing installed) and only
that file is read. Left out: MLServer's own ``infer_stream`` and ``generate`` routes,
which are not part of the protocol; and the spec's ``"type": "bytes"`` for tensor data,
which is no JSON Schema type. Model names are drawn twice: as schemathesis
generates them (unknown models) and from the models the edge serves, so the inference
cases reach a model's validation too.
"""

from __future__ import annotations

import copy
import json
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import schemathesis
from edgetest import spawn_edge
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
)

from cdn.processes import stop_process

MLSERVER = "mlserver==1.7.1"
SPEC = "mlserver/rest/openapi/dataplane.json"
NOT_PROTOCOL = r"/(infer_stream|generate|generate_stream)$"


@pytest.fixture(scope="session")
def dataplane_spec(tmp_path_factory: pytest.TempPathFactory) -> dict:
    dest = tmp_path_factory.mktemp("mlserver-wheel")
    subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps",
                    "--only-binary=:all:", MLSERVER, "-d", str(dest)], check=True)
    wheel = next(dest.glob("mlserver-*.whl"))
    with zipfile.ZipFile(wheel) as z:
        spec = json.loads(z.read(SPEC))
    # "bytes" is no JSON Schema type (schemathesis refuses the operation): tensor data is
    # the JSON array it also allows
    assert spec["components"]["schemas"]["TensorData"]["oneOf"] == [{"type": "array"},
                                                                    {"type": "bytes"}]
    spec["components"]["schemas"]["TensorData"] = {"title": "TensorData", "type": "array"}
    return spec


@pytest.fixture(scope="module")
def live_edge(tmp_path_factory: pytest.TempPathFactory, models_dir: Path):
    folder = tmp_path_factory.mktemp("oip-edge")
    origin = spawn_edge(folder, "--models", str(models_dir), "--region", "origin")
    edge = spawn_edge(folder, "--upstream", origin.url, "--region", "eu")
    yield edge.url
    for served in (edge, origin):
        stop_process(served.proc)


def _with_our_models(spec: dict) -> dict:
    spec = copy.deepcopy(spec)
    for item in spec["paths"].values():
        for param in item.get("parameters", []):
            if param["name"] == "model_name":
                param["schema"] = {"type": "string", "enum": ["ranker", "embedder"]}
            if param["name"] == "model_version":
                param["schema"] = {"type": "string", "enum": ["1", "2"]}
    return spec


def _reject_constant(token: str) -> float:
    raise ValueError(f"{token} is not JSON")


def check(case: schemathesis.Case, base_url: str) -> None:
    response = case.call_and_validate(
        base_url=base_url,
        checks=[not_a_server_error, content_type_conformance, response_schema_conformance])
    assert response.status_code < 500, response.text
    json.loads(response.text, parse_constant=_reject_constant)  # strict JSON, every answer
    if response.status_code >= 400:
        assert json.loads(response.text)["error"]  # a message


def run_spec(spec: dict, base_url: str) -> list[str]:
    """Every operation of `spec` (but MLServer's own routes), ~40 cases each; returns the
    operations run. (One test loops over them: schemathesis' pytest plugin does not run on
    this pytest.)"""
    schema = schemathesis.openapi.from_dict(spec).exclude(path_regex=NOT_PROTOCOL)
    labels = []
    for result in schema.get_all_operations():
        operation = result.ok()

        @given(case=operation.as_strategy())
        @settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck),
                  database=None)
        def run(case: schemathesis.Case) -> None:
            check(case, base_url)

        run()
        labels.append(operation.label)
    return labels


def test_dataplane_spec_any_model(dataplane_spec: dict, live_edge: str) -> None:
    labels = run_spec(dataplane_spec, live_edge)
    assert "POST /v2/models/{model_name}/infer" in labels and len(labels) == 9


def test_dataplane_spec_our_models(dataplane_spec: dict, live_edge: str) -> None:
    run_spec(_with_our_models(dataplane_spec), live_edge)
