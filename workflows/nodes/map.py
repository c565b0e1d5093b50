from typing import Annotated, Literal, Union

from pydantic import Field

from .base import NODE_ID_PATTERN, NodeBase, StepFailed
from .condition import ConditionNode
from .llm import LlmNode
from .router import RouterNode
from .transform import TransformNode

# The node a map runs per item is written inline, so its `id` is optional: its steps are
# named after the map node and the item index. Every other field is the ordinary node's.
_OptionalId = Annotated[str | None, Field(pattern=NODE_ID_PATTERN, max_length=64)]


class InlineLlmNode(LlmNode):
    id: _OptionalId = None


class InlineTransformNode(TransformNode):
    id: _OptionalId = None


class InlineConditionNode(ConditionNode):
    id: _OptionalId = None


class InlineRouterNode(RouterNode):
    id: _OptionalId = None


InlineNode = Annotated[
    Union[InlineLlmNode, InlineTransformNode, InlineConditionNode, InlineRouterNode],
    Field(discriminator="type"),
]


class MapNode(NodeBase):
    """Runs `node` once per element of the list `items` evaluates to, at most
    `max_concurrency` at a time; its output is the list of their outputs, in order.

    Inside the inline node's templates `item` is the element and `index` its position.
    """

    type: Literal["map"]
    items: str
    node: InlineNode
    max_concurrency: int = Field(4, ge=1, le=64)
    max_items: int = Field(100, ge=1, le=10_000)

    expression_fields = ("items",)

    def inline_nodes(self):
        yield ("node",), self.node

    def execute(self, ctx):
        items = ctx.evaluate(self.items, "items")
        if isinstance(items, dict) or not isinstance(items, (list, tuple)):
            raise StepFailed(f"items must evaluate to a list, not {type(items).__name__}")
        if len(items) > self.max_items:
            raise StepFailed(f"{len(items)} items is more than max_items ({self.max_items})")
        ctx.record_input({"items": len(items)})
        return ctx.map(self.node, list(items), self.max_concurrency)
