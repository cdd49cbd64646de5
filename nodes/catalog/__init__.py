"""The node catalogue: one module per node, each with its prompt, request model and output schema."""

from __future__ import annotations

from functools import cache
from typing import Any

from nodes.catalog.base import Node, Task
from nodes.catalog.classify import Classify
from nodes.catalog.draft import Draft
from nodes.catalog.extract import Extract
from nodes.catalog.judge import Judge

NODES: dict[str, Node[Any]] = {node.name: node for node in (Classify(), Extract(), Draft(), Judge())}


@cache
def catalogue() -> list[dict[str, Any]]:
    """Every node's description, for ``GET /v1/nodes`` (built once: the catalogue never changes)."""
    return [node.describe() for node in NODES.values()]


__all__ = ["NODES", "Node", "Task", "catalogue"]
