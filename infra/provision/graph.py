"""``python -m infra graph``: the synthesized resource graph as a picture, with the ways to the database port marked.

    python -m infra graph --stack dev --format svg --output docs/graph-aws-dev.svg
    python -m infra graph --stack gcp-dev --format mermaid

The graph is the offline synthesis (:mod:`infra.provision.synth`, project mocks): one node per
cloud resource, grouped by the component that declares it (network, database, bastion, secrets),
an edge per dependency. What can open a TCP connection to the database port is drawn in red:

* AWS: every ingress rule of the database's security groups that admits the port, its source
  (a security group of the stack, one outside it, or a CIDR), the instances in that source group,
  and whatever may reach those instances in turn (their groups' ingress rules);
* GCP: every egress firewall rule that allows the port, the instances it applies to (by service
  account or tag), the ingress rules that admit traffic to them (IAP's range for the bastion),
  and the VPC's implied allow-egress rule (any VM in the network can reach the private IP unless
  a deny rule says otherwise).

DOT comes from the ``graphviz`` package (pinned; it writes the DOT language and runs the ``dot``
binary of the Debian ``graphviz`` package for svg and png); mermaid is written here. The DOT
text is deterministic; ``make graphs`` regenerates ``docs/graph-*.{dot,svg}``, and a test fails
when the committed pictures no longer match the code.
"""

from __future__ import annotations

import argparse
import hashlib
import re
import shutil
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from infra.errors import InfraError

if TYPE_CHECKING:
    from infra.provision.recording import RecordedResource, Synthesis

__all__ = ["Edge", "Graph", "Node", "build_graph", "register", "render", "svg_marker", "to_dot", "to_mermaid"]

Format = Literal["svg", "png", "dot", "mermaid"]
FORMATS: tuple[Format, ...] = ("svg", "png", "dot", "mermaid")
_GROUPS = {
    "network": "network",
    "database": "database",
    "bastion": "bastion",
    "usersecrets": "secrets",
    "datakey": "secrets",
}
_GROUP_ORDER = ("network", "bastion", "database", "secrets")
_REACH = "#c0392b"


@dataclass(frozen=True)
class Node:
    key: str
    label: str
    group: str | None
    reach: bool = False
    external: bool = False


@dataclass(frozen=True)
class Edge:
    source: str
    target: str
    label: str = ""
    reach: bool = False
    dashed: bool = False


@dataclass
class Graph:
    """Nodes, edges and groups of one stack's synthesized graph (sorted when rendered)."""

    stack: str
    nodes: dict[str, Node] = field(default_factory=dict)
    edges: dict[tuple[str, str], Edge] = field(default_factory=dict)

    def add_edge(self, edge: Edge) -> None:
        old = self.edges.get((edge.source, edge.target))
        if old is None or (edge.reach and not old.reach):
            self.edges[(edge.source, edge.target)] = edge

    def mark(self, *keys: str) -> None:
        for key in keys:
            node = self.nodes[key]
            self.nodes[key] = Node(node.key, node.label, node.group, True, node.external)

    def external(self, key: str, label: str) -> str:
        if key not in self.nodes:
            self.nodes[key] = Node(key, label, None, True, True)
        return key


def _key(res: RecordedResource) -> str:
    # no ':' in a key: DOT reads `node:port` in an edge
    return f"{res.type.split(':')[1]}/{res.name}"


def _short_type(type_: str) -> str:
    # aws:ec2/securityGroup:SecurityGroup -> ec2 SecurityGroup; gcp:compute/firewall:Firewall -> compute Firewall
    _provider, module, kind = type_.split(":")
    return f"{module.split('/')[0]} {kind}"


def _group(res: RecordedResource, parents: Mapping[str, RecordedResource]) -> str | None:
    parent = parents.get(res.parent)
    if parent is None:
        return None
    name = parent.type.rsplit(":", 1)[-1].lower()
    return _GROUPS.get(name, name)


def _covers(port: int, protocol: object, low: object, high: object) -> bool:
    if str(protocol) in ("-1", "all"):
        return True
    if str(protocol) not in ("tcp", "6"):
        return False
    try:  # protobuf carries every number as a double: 5432.0
        return int(float(str(low))) <= port <= int(float(str(high)))
    except ValueError:
        return False


def _gcp_allows(rule: RecordedResource, port: int) -> bool:
    for allow in rule.input("allows") or []:
        protocol = allow.get("protocol")
        ports = allow.get("ports") or []
        if protocol == "all" or (protocol == "tcp" and not ports):
            return True
        if protocol == "tcp":
            for item in ports:
                low, _, high = str(item).partition("-")
                if _covers(port, "tcp", low, high or low):
                    return True
    return False


def build_graph(result: Synthesis, stack: str, project: str = "private-postgres") -> Graph:
    """The graph of ``result`` with the paths to the database port marked."""
    graph = Graph(stack)
    parents = {r.urn: r for r in result.resources if not r.custom}
    custom = [r for r in result.resources if r.custom]
    prefix = f"{project}-{stack}-"
    by_urn = {r.urn: r for r in custom}
    for res in custom:
        short = res.name.removeprefix(prefix)
        graph.nodes[_key(res)] = Node(_key(res), f"{_short_type(res.type)}\n{short}", _group(res, parents))
    for res in custom:
        for dep in res.dependencies:
            if dep in by_urn:
                graph.add_edge(Edge(_key(by_urn[dep]), _key(res)))
    _mark_aws(graph, custom)
    _mark_gcp(graph, custom)
    return graph


def _mark_aws(graph: Graph, resources: list[RecordedResource]) -> None:
    groups = {r.id: r for r in resources if r.type == "aws:ec2/securityGroup:SecurityGroup" and r.id}
    instances = [r for r in resources if r.type == "aws:ec2/instance:Instance"]
    ingress = [r for r in resources if r.type == "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule"]
    egress = [r for r in resources if r.type == "aws:vpc/securityGroupEgressRule:SecurityGroupEgressRule"]

    def reach_group(group_id: str, port: int | None, seen: set[str]) -> None:
        """Mark what can reach ``group_id`` (on ``port``, or on any port for the hops before)."""
        if group_id in seen:
            return
        seen.add(group_id)
        target = (
            _key(groups[group_id])
            if group_id in groups
            else graph.external(group_id, f"{group_id}\n(outside the stack)")
        )
        for rule in ingress:
            if rule.input("securityGroupId") != group_id:
                continue
            if port is not None and not _covers(
                port, rule.input("ipProtocol"), rule.input("fromPort"), rule.input("toPort")
            ):
                continue
            graph.mark(_key(rule))
            graph.add_edge(Edge(_key(rule), target, f"tcp/{port}" if port else "", reach=True))
            source_id = rule.input("referencedSecurityGroupId")
            if source_id:
                source = (
                    _key(groups[source_id])
                    if source_id in groups
                    else graph.external(source_id, f"{source_id}\n(outside the stack)")
                )
                graph.add_edge(Edge(source, _key(rule), reach=True))
                if source_id in groups:
                    graph.mark(source)
                    for out in egress:  # the source's own egress rule that lets it out to the port
                        if (
                            port is not None
                            and out.input("securityGroupId") == source_id
                            and out.input("referencedSecurityGroupId") == group_id
                            and _covers(port, out.input("ipProtocol"), out.input("fromPort"), out.input("toPort"))
                        ):
                            graph.mark(_key(out))
                            graph.add_edge(Edge(source, _key(out), reach=True))
                            graph.add_edge(Edge(_key(out), target, f"tcp/{port}", reach=True))
                    for inst in instances:
                        if source_id in (inst.input("vpcSecurityGroupIds") or []):
                            graph.mark(_key(inst))
                            graph.add_edge(Edge(_key(inst), source, "member", reach=True))
                    reach_group(source_id, None, seen)
            for cidr_key in ("cidrIpv4", "cidrIpv6"):
                cidr = rule.input(cidr_key)
                if cidr:
                    graph.add_edge(Edge(graph.external(f"cidr/{cidr}", str(cidr)), _key(rule), reach=True))

    for db in (r for r in resources if r.type == "aws:rds/instance:Instance"):
        port = int(float(db.input("port") or 5432))
        graph.mark(_key(db))
        for group_id in db.input("vpcSecurityGroupIds") or []:
            if group_id in groups:
                graph.mark(_key(groups[group_id]))
                graph.add_edge(Edge(_key(groups[group_id]), _key(db), f"attached, tcp/{port}", reach=True))
            reach_group(group_id, port, set())


def _mark_gcp(graph: Graph, resources: list[RecordedResource]) -> None:
    databases = [r for r in resources if r.type == "gcp:sql/databaseInstance:DatabaseInstance"]
    if not databases:
        return
    port = 5432  # Cloud SQL for PostgreSQL listens on 5432 only
    firewalls = [r for r in resources if r.type == "gcp:compute/firewall:Firewall"]
    instances = [r for r in resources if r.type == "gcp:compute/instance:Instance"]
    networks = [r for r in resources if r.type == "gcp:compute/network:Network"]

    def targets(rule: RecordedResource) -> list[RecordedResource]:
        accounts = set(rule.input("targetServiceAccounts") or [])
        tags = set(rule.input("targetTags") or [])
        found = []
        for inst in instances:
            email = (inst.input("serviceAccount") or {}).get("email")
            by_account = bool(accounts) and email in accounts
            by_tag = bool(tags & set(inst.input("tags") or []))
            if by_account or by_tag or (not accounts and not tags):  # no target: every instance
                found.append(inst)
        return found

    for db in databases:
        graph.mark(_key(db))
        for rule in firewalls:
            if rule.input("direction") != "EGRESS" or not _gcp_allows(rule, port):
                continue
            graph.mark(_key(rule))
            graph.add_edge(Edge(_key(rule), _key(db), f"egress allow tcp/{port}", reach=True))
            for inst in targets(rule):
                graph.mark(_key(inst))
                graph.add_edge(Edge(_key(inst), _key(rule), reach=True))
                for entry in firewalls:
                    if entry.input("direction") == "INGRESS" and entry.input("allows") and inst in targets(entry):
                        graph.mark(_key(entry))
                        graph.add_edge(Edge(_key(entry), _key(inst), reach=True))
                        for cidr in entry.input("sourceRanges") or []:
                            label = f"{cidr}\n(IAP TCP forwarding)" if cidr == "35.235.240.0/20" else str(cidr)
                            graph.add_edge(Edge(graph.external(f"cidr/{cidr}", label), _key(entry), reach=True))
        for network in networks:
            graph.add_edge(
                Edge(_key(network), _key(db), "implied allow egress:\nany VM in the VPC", reach=True, dashed=True)
            )


# -- rendering ------------------------------------------------------------------------------------


def _sorted_nodes(graph: Graph) -> list[Node]:
    return sorted(graph.nodes.values(), key=lambda n: n.key)


def _sorted_edges(graph: Graph) -> list[Edge]:
    return [graph.edges[k] for k in sorted(graph.edges)]


def to_dot(graph: Graph) -> str:
    """The DOT source (deterministic: sorted nodes, edges and groups)."""
    import graphviz

    dot = graphviz.Digraph(
        name=f"stack_{re.sub(r'[^A-Za-z0-9_]', '_', graph.stack)}",
        graph_attr={
            "rankdir": "LR",
            "fontname": "Helvetica",
            "label": f"stack {graph.stack}: red = can reach the database port",
            "labelloc": "t",
        },
        node_attr={"shape": "box", "style": "rounded", "fontname": "Helvetica", "fontsize": "10"},
        edge_attr={"color": "#9a9a9a", "arrowsize": "0.6", "fontname": "Helvetica", "fontsize": "9"},
    )
    nodes = _sorted_nodes(graph)
    groups = sorted({n.group for n in nodes if n.group}, key=lambda g: (*_GROUP_ORDER, g).index(g))

    def add(target: Any, node: Node) -> None:
        attrs = {"color": _REACH, "fontcolor": _REACH, "penwidth": "2"} if node.reach else {}
        if node.external:
            attrs["style"] = "dashed"
        target.node(node.key, node.label, **attrs)

    for group in groups:
        with dot.subgraph(name=f"cluster_{group}") as cluster:
            cluster.attr(label=group, style="rounded", color="#5b6c7d", fontname="Helvetica")
            for node in nodes:
                if node.group == group:
                    add(cluster, node)
    for node in nodes:
        if node.group is None:
            add(dot, node)
    for edge in _sorted_edges(graph):
        attrs = {"color": _REACH, "fontcolor": _REACH, "penwidth": "2"} if edge.reach else {}
        if edge.dashed:
            attrs["style"] = "dashed"
        dot.edge(edge.source, edge.target, edge.label or None, **attrs)
    return str(dot.source)


def _mermaid_id(key: str) -> str:
    return re.sub(r"[^A-Za-z0-9_]", "_", key)


def to_mermaid(graph: Graph) -> str:
    """A mermaid ``flowchart`` of the same graph (for markdown that renders mermaid)."""
    lines = ["flowchart LR"]
    nodes = _sorted_nodes(graph)

    def node_line(node: Node) -> str:
        label = node.label.replace('"', "'").replace("\n", "<br/>")
        return f'{_mermaid_id(node.key)}["{label}"]'

    for group in sorted({n.group for n in nodes if n.group}):
        lines.append(f"  subgraph {group}")
        lines += [f"    {node_line(n)}" for n in nodes if n.group == group]
        lines.append("  end")
    lines += [f"  {node_line(n)}" for n in nodes if n.group is None]
    reach_links: list[int] = []
    for index, edge in enumerate(_sorted_edges(graph)):
        arrow = "-.->" if edge.dashed else "-->"
        label = f'|"{edge.label.replace(chr(10), " ")}"|' if edge.label else ""
        lines.append(f"  {_mermaid_id(edge.source)} {arrow}{label} {_mermaid_id(edge.target)}")
        if edge.reach:
            reach_links.append(index)
    lines.append(f"  classDef reach stroke:{_REACH},stroke-width:2px,color:{_REACH}")
    marked = [_mermaid_id(n.key) for n in nodes if n.reach]
    if marked:
        lines.append(f"  class {','.join(marked)} reach")
    if reach_links:
        lines.append(f"  linkStyle {','.join(map(str, reach_links))} stroke:{_REACH},stroke-width:2px")
    return "\n".join(lines) + "\n"


def svg_marker(dot_source: str) -> str:
    """The comment put into a rendered SVG: which DOT source (by sha256) it was drawn from."""
    return f"<!-- dot-source sha256={hashlib.sha256(dot_source.encode()).hexdigest()} -->"


def render(graph: Graph, fmt: Format) -> bytes:
    """The graph in ``fmt``; svg and png run Graphviz's ``dot`` (Debian package graphviz)."""
    if fmt == "mermaid":
        return to_mermaid(graph).encode()
    source = to_dot(graph)
    if fmt == "dot":
        return source.encode()
    if shutil.which("dot") is None:
        raise InfraError("graphviz's `dot` is not installed; fix: apt-get install graphviz (or --format dot|mermaid)")
    result = subprocess.run(["dot", f"-T{fmt}"], input=source.encode(), capture_output=True, check=False)
    if result.returncode != 0:
        raise InfraError(f"dot -T{fmt} failed: {result.stderr.decode(errors='replace').strip()[:300]}")
    if fmt == "svg":
        text = result.stdout.decode()
        head, sep, rest = text.partition("\n")  # after the XML declaration
        return f"{head}{sep}{svg_marker(source)}\n{rest}".encode()
    return result.stdout


def graph_for(stack: str) -> Graph:
    from infra.provision.synth import run_synth

    return build_graph(run_synth(stack), stack)


def _handle(args: argparse.Namespace) -> int:
    data = render(graph_for(args.stack), args.format)
    if args.output is not None:
        args.output.write_bytes(data)
    elif args.format == "png":
        sys.stdout.buffer.write(data)
    else:
        print(data.decode(), end="")
    return 0


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "graph",
        help="draw the synthesized resource graph (svg, png, dot, mermaid); paths to the database port in red",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--stack", default="dev", help="reads Pulumi.<stack>.yaml (default: dev)")
    parser.add_argument("--format", choices=FORMATS, default="svg")
    parser.add_argument("--output", type=Path, metavar="FILE", help="write to FILE instead of stdout")
    parser.set_defaults(handler=_handle)
