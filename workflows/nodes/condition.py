from typing import Literal

from .base import NodeBase


class ConditionNode(NodeBase):
    """Evaluates an expression; its output is the result as a boolean."""

    type: Literal["condition"]
    instant = True
    expression: str

    expression_fields = ("expression",)

    def execute(self, ctx):
        value = bool(ctx.evaluate(self.expression, "expression"))
        ctx.record_input({"expression": self.expression})
        return value
