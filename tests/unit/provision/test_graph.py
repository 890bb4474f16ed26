"""``graph``: the synthesized graph, its groups, the paths to the database port, and the committed pictures."""

from __future__ import annotations

import hashlib

import pytest

from infra.paths import PROJECT_DIR
from infra.provision.graph import build_graph, graph_for, render, svg_marker, to_dot, to_mermaid
from infra.provision.synth import run_synth

DOCS = PROJECT_DIR / "docs"


@pytest.mark.parametrize("stack", ["dev", "gcp-dev"])
def test_the_committed_pictures_match_the_code(stack: str) -> None:
    """The DOT source is deterministic, so it is compared byte for byte (SVG bytes vary with the
    Graphviz version); the SVG carries the sha256 of the DOT it was drawn from."""
    dot = to_dot(graph_for(stack))
    committed = (DOCS / f"graph-{stack}.dot").read_text()
    assert dot == committed, f"docs/graph-{stack}.dot is stale: run `make graphs` and commit docs/"
    svg = (DOCS / f"graph-{stack}.svg").read_text()
    assert svg_marker(committed) in svg.splitlines()[:3], f"docs/graph-{stack}.svg was not drawn from its .dot"


def _reach(stack: str, overrides: dict[str, str] | None = None) -> set[str]:
    graph = build_graph(run_synth(stack, overrides or {}), stack)
    return {
        key.rsplit("/", 1)[-1].removeprefix(f"private-postgres-{stack}-") for key, n in graph.nodes.items() if n.reach
    }


def test_aws_only_the_bastion_reaches_the_database_port_and_app_groups_when_configured() -> None:
    assert _reach("dev") == {
        "db-instance",
        "net-db",
        "net-db-from-bastion",
        "net-bastion",
        "net-bastion-to-db",
        "bastion-instance",
    }
    with_app = _reach("dev", {"appSecurityGroupIds": '["sg-0123456789abcdef0"]'})
    assert with_app - _reach("dev") == {"net-db-from-app-0", "sg-0123456789abcdef0"}


def test_gcp_the_bastion_through_iap_and_the_vpc_implied_egress_reach_the_database_port() -> None:
    graph = graph_for("gcp-dev")
    reach = {key for key, node in graph.nodes.items() if node.reach}
    assert reach == {
        "sql/databaseInstance/private-postgres-gcp-dev-db-instance",
        "compute/firewall/private-postgres-gcp-dev-bastion-to-db",
        "compute/instance/private-postgres-gcp-dev-bastion-instance",
        "compute/firewall/private-postgres-gcp-dev-bastion-ssh-in",
        "cidr/35.235.240.0/20",
    }
    implied = graph.edges[
        (
            "compute/network/private-postgres-gcp-dev-net-vpc",
            "sql/databaseInstance/private-postgres-gcp-dev-db-instance",
        )
    ]
    assert implied.reach
    assert implied.dashed


def test_groups_and_formats() -> None:
    graph = graph_for("dev")
    groups = {node.group for node in graph.nodes.values()}
    assert {"network", "database", "bastion", "secrets"} <= groups
    assert graph.nodes["rds/instance/private-postgres-dev-db-instance"].group == "database"
    assert graph.nodes["secretsmanager/secret/private-postgres-dev-users-app"].group == "secrets"
    dot = render(graph, "dot").decode()
    assert "subgraph cluster_network {" in dot
    mermaid = to_mermaid(graph)
    assert mermaid.startswith("flowchart LR\n  subgraph bastion\n")
    assert "class " in mermaid
    assert hashlib.sha256(dot.encode()).hexdigest() == hashlib.sha256(to_dot(graph).encode()).hexdigest()
