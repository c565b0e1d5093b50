import json
from typing import Literal

from .base import NodeBase, StepFailed


class OutputNode(NodeBase):
    """Renders the value a branch of the workflow hands back."""

    type: Literal["output"]
    instant = True
    value: str
    format: Literal["markdown", "text", "json"] = "markdown"

    template_fields = ("value",)

    def execute(self, ctx):
        text = ctx.render(self.value, "value")
        if self.format == "json":
            try:
                return json.loads(text)
            except ValueError as exc:
                raise StepFailed(f"the value did not render valid JSON: {exc}")
        return text
