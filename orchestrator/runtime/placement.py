"""Checks made before anything is deployed: every deployment's resources fit some node
type of the cluster, and every model a replica loads from a package is prepared. Each
problem is one line with the offending YAML path, as ``config validate`` reports.

Node types come from a Ray cluster launcher config (``available_node_types.*.resources``,
``cluster.yaml``) or from a running cluster's live nodes (``ray.nodes()``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from orchestrator.config import MixserveConfig, Resources

NodeTypes = dict[str, dict[str, float]]


class ClusterFileError(ValueError):
    """A cluster launcher config that cannot be read or names no node types."""


def node_types_of_cluster_file(path: Path) -> NodeTypes:
    """Node type -> the Ray resources it declares (``available_node_types``)."""
    try:
        doc = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise ClusterFileError(f"{path}: cannot read: {exc}") from None
    types = doc.get("available_node_types") if isinstance(doc, dict) else None
    if not isinstance(types, dict) or not types:
        raise ClusterFileError(f"{path}: available_node_types: no node types")
    out: NodeTypes = {}
    for name, spec in types.items():
        resources = (spec or {}).get("resources") or {}
        if not isinstance(resources, dict):
            raise ClusterFileError(f"{path}: available_node_types.{name}.resources: not a map")
        out[str(name)] = {str(k): float(v) for k, v in resources.items()}
    return out


def node_types_of_live_cluster(nodes: Sequence[Mapping[str, Any]]) -> NodeTypes:
    """Each alive node (as the dashboard's state API lists them) as a node type."""
    return {
        f"{n.get('node_ip', '?')} ({str(n['node_id'])[:8]})": {
            str(k): float(v) for k, v in (n.get("resources_total") or {}).items()
        }
        for n in nodes
        if n.get("state") == "ALIVE"
    }


def _asks(resources: Resources) -> dict[str, float]:
    asks = {"CPU": resources.num_cpus, "GPU": resources.num_gpus, **resources.custom}
    if resources.memory_gb is not None:
        asks["memory"] = resources.memory_gb * 1024**3
    return {k: v for k, v in asks.items() if v > 0}


def _describe(types: NodeTypes) -> str:
    def one(res: dict[str, float]) -> str:
        shown = {k: v for k, v in res.items() if not k.startswith("node:") and k != "memory"}
        return ", ".join(f"{k} {v:g}" for k, v in sorted(shown.items())) or "nothing"

    return "; ".join(f"{name}: {one(res)}" for name, res in types.items())


def resource_problems(config: MixserveConfig, types: NodeTypes) -> list[str]:
    """One line per deployment no node type can hold, naming what it lacks."""
    parts: list[tuple[str, Resources]] = [
        (f"specialists[{i}].resources", s.resources) for i, s in enumerate(config.specialists)
    ]
    parts += [("router.resources", config.router.resources)]
    for i, c in enumerate(config.retrieval.collections):
        if c.resources is None:
            parts += [("retrieval.resources", config.retrieval.resources)]
        else:
            parts += [(f"retrieval.collections[{i}].resources", c.resources)]
        if c.shards > 1:
            parts += [(f"retrieval.collections[{i}].shard_resources", c.shard_resources)]
    parts += [("gateway.resources", config.gateway.resources)]
    # memory is checked only where node types state it (a launcher fills it in from the
    # instance type otherwise)
    stated = {k for res in types.values() for k in res}
    problems = []
    for where, resources in parts:
        asks = {k: v for k, v in _asks(resources).items() if k != "memory" or k in stated}
        if any(all(res.get(k, 0.0) >= v for k, v in asks.items()) for res in types.values()):
            continue
        lacking = sorted(
            k for k, v in asks.items() if not any(res.get(k, 0.0) >= v for res in types.values())
        )
        short = ", ".join(f"{k} {asks[k]:g}" for k in lacking) or "all of it on one node"
        problems.append(
            f"{where}: no node type provides {short} "
            f"(asked: {', '.join(f'{k} {v:g}' for k, v in sorted(asks.items()))}; "
            f"node types: {_describe(types)})"
        )
    return problems


def model_problems(config: MixserveConfig, cache_dir: Path) -> list[str]:
    """One line per packaged model that is not prepared (``mixserve models prepare``),
    and per local model directory that does not exist; models named by id are the
    engine's to resolve."""
    from weights import is_prepared

    parts = [(f"specialists[{i}].model", s.model) for i, s in enumerate(config.specialists)]
    parts.append(("router.model", config.router.model))
    problems = []
    for where, source in parts:
        if source.package is not None and not is_prepared(source.package, cache_dir):
            problems.append(
                f"{where}: {source.package} is not prepared in {cache_dir} "
                "(run 'mixserve models prepare' on every node, as cluster.yaml's setup does)"
            )
        elif source.path is not None and source.path.startswith(("/", ".", "~")):
            if not config.resolve(str(Path(source.path).expanduser())).exists():
                problems.append(f"{where}: no model directory at {source.path}")
    return problems
