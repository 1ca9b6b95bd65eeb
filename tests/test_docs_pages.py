"""The README and the pages under docs/: short README, links that lead somewhere, nothing
that points outside the repository, every shell command of our programs accepted by the
program's real command-line parser, and every command the pages show run by a test:
RUNS names, for each, the test that runs it (tests/doc_commands.py reads the commands)."""

from __future__ import annotations

import argparse
import contextlib
import io
import re
import shlex
from collections.abc import Callable
from pathlib import Path

import pytest

from doc_commands import PAGES, ROOT, commands

OUTSIDE = re.compile(r"\.\./shared|design doc|the seeds|other helpers|helpers of the project|"
                     r"\bissue \d|/work/",
                     re.I)
# Shell variables the pages' examples set or assume, with a value of the right shape.
VARIABLES = {"O": "--origin=http://127.0.0.1:8000", "TOKEN": "t0ken"}


def page_id(path: Path) -> str:
    return str(path.relative_to(ROOT))


def parsers() -> dict[str, Callable[[], argparse.ArgumentParser]]:
    from cdn.cli import parser as cdn_parser
    from edge.cli import build_parser as edge_parser
    from geodns.cli import build_parser as geodns_parser
    from geodns.plugins import load_plugins
    from healthcheck.cli import build_parser as healthcheck_parser

    return {"cdn": cdn_parser, "edge": edge_parser, "healthcheck": healthcheck_parser,
            "geodns": lambda: geodns_parser(load_plugins())}


def anchors(text: str) -> set[str]:
    """GitHub's anchors for a page's headings."""
    found = set()
    for heading in re.findall(r"^#{1,6} (.+)$", text, re.M):
        slug = re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")
        found.add(slug)
    return found


def test_the_readme_is_short():
    assert len((ROOT / "README.md").read_text().splitlines()) <= 250


@pytest.mark.parametrize("page", PAGES, ids=page_id)
def test_nothing_refers_to_material_outside_the_repository(page):
    assert not [line for line in page.read_text().splitlines() if OUTSIDE.search(line)]


@pytest.mark.parametrize("page", PAGES, ids=page_id)
def test_links_lead_to_files_and_headings_of_the_repository(page):
    text = page.read_text()
    fenced = re.sub(r"```.*?```", "", text, flags=re.S)
    for target in re.findall(r"\]\(([^)\s]+)\)", fenced):
        if re.match(r"[a-z]+://", target):
            continue
        path, _, anchor = target.partition("#")
        linked = (page.parent / path).resolve() if path else page
        assert linked.exists(), f"{page_id(page)}: {target} leads nowhere"
        assert ROOT in linked.parents or linked == ROOT, target
        if anchor and linked.suffix == ".md":
            assert anchor in anchors(linked.read_text()), f"{page_id(page)}: no #{anchor}"


@pytest.mark.parametrize("page", PAGES, ids=page_id)
def test_every_command_of_our_programs_is_accepted_by_its_parser(page):
    programs = parsers()
    checked = 0
    for line in commands(page.read_text()):
        for name, value in VARIABLES.items():
            line = line.replace(f"${name}", value)
        words = shlex.split(line)
        while words and "=" in words[0] and not words[0].startswith("-"):
            words.pop(0)  # VAR=value before the command
        if not words:
            continue
        program = Path(words[0]).name
        if program not in programs:
            continue
        errors = io.StringIO()
        with contextlib.redirect_stderr(errors):
            try:
                programs[program]().parse_args(words[1:])
            except SystemExit as exc:
                pytest.fail(f"{page_id(page)}: `{line}`: {errors.getvalue()} ({exc})")
        checked += 1
    if page.name in ("distribution.md", "edge.md", "health.md"):
        assert checked, f"{page_id(page)} shows commands of our programs"


CI = ".ci/run"  # the whole suite: bin/test
# page, the commands (a regular expression), and the test that runs them (path::name,
# or a file: all its tests). The docker and kubectl lines need a Docker host or a
# cluster, which the build machines lack: their runner is the test that runs the same
# configuration without one, and the page says so (DOCKER_HOST_NEEDED).
RUNS = [
    ("README.md", r"^bin/up$|^\.venv/bin/cdn up$",
     "tests/stack/test_cdn_up.py::test_cdn_up_prints_the_stack_and_ctrl_c_stops_every_process"),
    ("README.md", r"^bin/up --clean$",
     "tests/stack/test_cdn_up.py::"
     "test_cdn_up_clean_keeps_tokens_off_command_lines_and_cdn_down_stops_it"),
    ("README.md", r"^bin/setup --runtime$",
     "tests/stack/test_setup_runtime.py::test_bin_setup_runtime_installs_the_runtime_only"),
    ("README.md", r"^bin/test$|^bin/setup$", CI),
    ("README.md", r"^dig |^\.venv/bin/cdn client ",
     "tests/stack/test_end_to_end.py::test_printed_dig_and_client_lines_work_as_printed"),
    ("README.md", r"^\.venv/bin/cdn simulate ",
     "tests/stack/test_readme_lines.py::test_the_readme_simulate_lines_run_against_a_stack"),
    ("README.md", r"^\.venv/bin/edge (make-models|publish|rollout) ",
     "tests/stack/test_distribution.py::"
     "test_a_version_published_to_the_stack_becomes_active_on_the_edges"),
    ("README.md", r"^GEOCDN_SCREENSHOT=\S+ \.venv/bin/python -m pytest tests/stack/"
     r"test_dashboard_browser\.py$", "tests/stack/test_dashboard_browser.py"),
    ("docs/benchmarks.md", r"^\.venv/bin/python bench/(dns_bench|big_zone_bench)\.py",
     "tests/dns/test_dns_benches.py::test_bench_command_runs"),
    ("docs/benchmarks.md", r"^\.venv/bin/python bench/(health_failover|cache_policy|edge_bench|"
     r"dist_sizes)\.py", "tests/test_docs_benches.py::test_bench_command_runs"),
    ("docs/benchmarks.md", r"^\.venv/bin/cdn simulate --requests 3000$",
     "tests/stack/test_readme_lines.py::test_the_readme_simulate_lines_run_against_a_stack"),
    ("docs/benchmarks.md", r"^bin/up$",
     "tests/stack/test_cdn_up.py::test_cdn_up_prints_the_stack_and_ctrl_c_stops_every_process"),
    ("docs/deployment.md", r"docker compose up --build$|^open http://127\.0\.0\.1:8053/$",
     "tests/distribution/test_deploy_config.py"),
    ("docs/deployment.md", r"^docker compose config$",
     "tests/stack/test_deploy_files.py::test_compose_file_matches_the_compose_spec_schema"),
    ("docs/deployment.md", r"^dig @127\.0\.0\.1 -p 5353 edge\.cdn\.example A ",
     "tests/stack/test_deploy_files.py::test_the_compose_zone_steers_the_page_s_dig_line"),
    ("docs/deployment.md", r"^kubectl apply -k deploy/k8s$",
     "tests/stack/test_deploy_files.py::test_k8s_manifests_pass_strict_schema_validation"),
    ("docs/distribution.md", r"^(edge |export EDGE_ADMIN_TOKEN=|O=)",
     "tests/distribution/test_distribution_docs.py::"
     "test_the_origin_edge_and_operator_commands_run_as_shown"),
    ("docs/distribution.md", r"^\.venv/bin/python -m pytest tests/distribution -q$", CI),
    ("docs/distribution.md", r"^python -m edge\.distribution \.\.\.$",
     "tests/distribution/test_cli.py::test_publish_list_rollback_purge_against_a_running_origin"),
    ("docs/dns.md", r"^geodns check zones/$",
     "tests/dns/test_dns_docs.py::test_geodns_check_reports_the_two_problems_the_page_shows"),
    ("docs/dns.md", r"^bin/up$",
     "tests/stack/test_cdn_up.py::test_cdn_up_prints_the_stack_and_ctrl_c_stops_every_process"),
    ("docs/dns.md", r"^dig @127\.0\.0\.1 -p 5353 (?!edge\.)",
     "tests/dns/test_dns_docs.py::test_readme_dig_line"),
    ("docs/dns.md", r"^dig @127\.0\.0\.1 -p 5353 edge\.|^curl ",
     "tests/dns/test_dns_docs.py::test_the_geo_dig_and_admin_curl_lines_run"),
    ("docs/edge.md", r"^\.venv/bin/edge (make-models|serve) |^curl ",
     "tests/edge/test_edge_docs.py::test_the_origin_edge_and_curl_lines_run_and_answer_as_shown"),
    ("docs/edge.md", r"^\.venv/bin/edge plan ",
     "tests/edge/test_edge_docs.py::"
     "test_the_planner_line_finds_the_cheapest_sizes_meeting_its_target"),
    ("docs/edge.md", r"^\.venv/bin/python bench/l2_store\.py ",
     "tests/edge/test_edge_docs.py::test_the_l2_bench_command_runs"),
    ("docs/edge.md", r"^\.venv/bin/python -m pytest tests/edge -q$", CI),
    ("docs/health.md", r"^curl ",
     "tests/health/test_health_docs.py::"
     "test_the_admin_api_lines_show_set_and_remove_an_override"),
    ("docs/health.md", r"^(healthcheck|geodns serve|export GEODNS_ADMIN_TOKEN=)",
     "tests/health/test_health_docs.py::"
     "test_two_checkers_and_a_dns_server_share_votes_and_overrides"),
    ("docs/health.md", r"^\.venv/bin/python bench/health_(false_downs|failover)\.py ",
     "tests/test_docs_benches.py::test_bench_command_runs"),
    ("docs/latency.md", r"^\.venv/bin/(python bench/latency_world\.py|cdn simulate --world)$",
     "tests/latency/test_docs.py::test_every_command_runs_as_shown"),
    ("docs/multi-site.md", r"^bin/up$",
     "tests/stack/test_cdn_up.py::test_cdn_up_prints_the_stack_and_ctrl_c_stops_every_process"),
    ("docs/benchmarks.md", r"^\.venv/bin/python bench/oip_peers\.py ",
     "tests/test_docs_benches.py::test_bench_command_runs"),
    ("docs/steering.md", r"^\.venv/bin/python bench/steering_scenarios\.py ",
     "tests/geo/test_docs_steering.py::"
     "test_the_scenario_table_is_what_the_documented_command_prints"),
    ("docs/steering.md", r"^python -m geodns\.steering\.demo_db$",
     "tests/geo/test_geoip_db.py::test_committed_database_is_the_build_of_the_table"),
    ("docs/steering.md", r"^geodns explain ",
     "tests/geo/test_docs_steering.py::test_the_explain_lines_print_what_the_page_shows"),
    ("docs/steering.md", r"^dig -b 127\.0\.2\.1 ",
     "tests/geo/test_docs_steering.py::test_the_dig_line_from_a_tokyo_address_gets_tokyo"),
    ("docs/steering.md", r"^\.venv/bin/python bench/steering_loop\.py ",
     "tests/test_docs_benches.py::test_bench_command_runs"),
]
DOCKER_HOST_NEEDED = re.compile(r"^(GEODNS_ADMIN_TOKEN=\S+ )?(docker|kubectl) |^open |"
                                r"^dig .* # → 172\.30\.")


def runners(page: str, command: str) -> list[str]:
    return [test for name, pattern, test in RUNS if name == page and re.search(pattern, command)]


@pytest.mark.parametrize("page", PAGES, ids=page_id)
def test_every_command_of_the_page_is_run_by_a_named_test(page):
    name = page_id(page)
    for command in commands(page.read_text()):
        found = runners(name, command)
        assert found, f"{name}: no test runs `{command}` (add one, and a line to RUNS)"
        for test in found:
            path, _, function = test.partition("::")
            assert (ROOT / path).exists(), test
            if function:
                assert re.search(rf"^(async )?def {function}\(", (ROOT / path).read_text(),
                                 re.M), test


def test_every_line_of_runs_names_a_command_a_page_shows():
    shown = {(page_id(p), c) for p in PAGES for c in commands(p.read_text())}
    for name, pattern, _ in RUNS:
        assert any(n == name and re.search(pattern, c) for n, c in shown), (name, pattern)


def test_the_deployment_page_says_which_commands_need_a_docker_host():
    text = (ROOT / "docs" / "deployment.md").read_text()
    assert [c for c in commands(text) if DOCKER_HOST_NEEDED.search(c)]
    assert "need a Docker host" in text and "Kubernetes cluster" in text
