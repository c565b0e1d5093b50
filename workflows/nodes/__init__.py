"""Node types: one module per type, each holding the typed config of that node.

Adding a node type is adding its module and one import line below: `NODE_TYPES` and the
`Node` union are built from the direct subclasses of `NodeBase`, in import order.
(The inline variants in `map.py` subclass concrete node types, so they are not listed.)
"""
from typing import Annotated, Union

from pydantic import Field

from .base import NodeBase, RetryPolicy, SourceRef, TemplateField
from .input import InputNode
from .llm import LlmNode
from .router import Route, RouterNode
from .condition import ConditionNode
from .aggregator import AggregatorNode
from .transform import TransformNode
from .map import InlineNode, MapNode
from .human import HumanNode
from .output import OutputNode
from .image import ImageNode

NODE_TYPES: dict[str, type[NodeBase]] = {
    cls.type_name(): cls for cls in NodeBase.__subclasses__()
}

Node = Annotated[Union[tuple(NODE_TYPES.values())], Field(discriminator="type")]

__all__ = [
    "NODE_TYPES", "Node", "NodeBase", "RetryPolicy", "SourceRef", "TemplateField", "Route",
    "InputNode", "LlmNode", "RouterNode", "ConditionNode", "AggregatorNode", "TransformNode",
    "InlineNode", "MapNode", "HumanNode", "OutputNode", "ImageNode",
]
