import json
from typing import Literal

from .base import NodeBase, StepFailed


class TransformNode(NodeBase):
    """Renders a template; with output_format "json" the rendered text is parsed as JSON."""

    type: Literal["transform"]
    instant = True
    template: str
    output_format: Literal["text", "json"] = "text"

    template_fields = ("template",)

    def execute(self, ctx):
        text = ctx.render(self.template, "template")
        if self.output_format == "json":
            try:
                return json.loads(text)
            except ValueError as exc:
                raise StepFailed(f"the template did not render valid JSON: {exc}")
        return text
