from typing import Literal

from .base import NodeBase


class TransformNode(NodeBase):
    """Renders a template; with output_format "json" the rendered text is parsed as JSON."""

    type: Literal["transform"]
    template: str
    output_format: Literal["text", "json"] = "text"

    template_fields = ("template",)
