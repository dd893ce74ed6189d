"""Bounds on a YAML job file, so a hostile or broken one is refused at once.

PyYAML shares an anchored node between all its aliases, so ten lines of aliases that alias
aliases stand for millions of nodes; everything that walks the data afterwards (the duplicate-key
check, pydantic) walks every one of them. Deep nesting overflows the composer's recursion, and an
alias inside its own anchor makes the data recursive. `BoundedLoader` counts while it composes:
each node once, and each alias as all the nodes it stands for; it refuses a document past
`MAX_NODES` nodes or `MAX_DEPTH` levels, or one with a recursive alias, before any of that work.
"""

from __future__ import annotations

from typing import Any

import yaml
from yaml.events import AliasEvent
from yaml.nodes import MappingNode, Node, SequenceNode

#: A job spec at SageMaker's limits (30 ranges of 30 values, 100 hyperparameters, 20 metrics)
#: is about 2,000 nodes.
MAX_NODES = 20_000
#: A job spec nests about 5 levels (hyperparameter_ranges.lr.values[0]).
MAX_DEPTH = 32
#: A job file at SageMaker's limits is under 0.5 MB.
MAX_FILE_BYTES = 1024 * 1024


class YamlBoundError(ValueError):
    """The document breaks a bound; `rule` says which, with the limit and the line."""

    def __init__(self, rule: str) -> None:
        super().__init__(rule)
        self.rule = rule


class BoundedLoader(yaml.SafeLoader):
    """PyYAML's safe loader that refuses documents past `MAX_NODES` or `MAX_DEPTH`."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._depth = 0
        self._expanded = 0  # nodes composed so far, each alias counted as its anchor's nodes
        # id(node) -> (nodes, levels) of each node composed so far. An anchored node without a
        # size is still being composed: an alias to it is inside it.
        self._sizes: dict[int, tuple[int, int]] = {}

    def compose_node(self, parent: Node | None, index: Any) -> Node:
        event = self.peek_event()
        line = event.start_mark.line + 1
        if isinstance(event, AliasEvent) and event.anchor in self.anchors:
            target = self.anchors[event.anchor]
            if id(target) not in self._sizes:
                raise YamlBoundError(
                    f"alias *{event.anchor} on line {line} refers to a node that contains it; "
                    "a job spec cannot be recursive"
                )
            nodes, levels = self._sizes[id(target)]
            self._count(nodes, line)
            self._check_depth(self._depth + levels, line)
            return super().compose_node(parent, index)
        self._depth += 1
        self._check_depth(self._depth, line)
        self._count(1, line)
        try:
            node = super().compose_node(parent, index)
        finally:
            self._depth -= 1
        self._sizes[id(node)] = self._measure(node)
        return node

    def fetch_flow_collection_start(self, TokenClass: Any) -> None:  # noqa: N803 - PyYAML's name
        """The scanner reads ahead over every `[` or `{` that may start a key, in quadratic
        time, before the composer sees the first; so deep flow nesting is refused here."""
        if self.flow_level >= MAX_DEPTH:
            self._check_depth(self.flow_level + 1, self.get_mark().line + 1)
        super().fetch_flow_collection_start(TokenClass)

    def _count(self, nodes: int, line: int) -> None:
        self._expanded += nodes
        if self._expanded > MAX_NODES:
            raise YamlBoundError(
                f"expands to more than {MAX_NODES:,} YAML nodes by line {line} (each use of an "
                "alias counts all the nodes of its anchor); a job spec needs far fewer, so "
                "aliases that multiply are refused"
            )

    def _check_depth(self, depth: int, line: int) -> None:
        if depth > MAX_DEPTH:
            raise YamlBoundError(
                f"nests deeper than {MAX_DEPTH} levels on line {line}; a job spec needs about 5"
            )

    def _measure(self, node: Node) -> tuple[int, int]:
        """(nodes, levels) of a composed node, aliases expanded."""
        if isinstance(node, SequenceNode):
            children = node.value
        elif isinstance(node, MappingNode):
            children = [part for pair in node.value for part in pair]
        else:
            return 1, 1
        sizes = [self._sizes.get(id(child), (1, 1)) for child in children]
        return 1 + sum(n for n, _ in sizes), 1 + max((levels for _, levels in sizes), default=0)
