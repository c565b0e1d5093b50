from typing import Literal

from .base import NodeBase


class OutputNode(NodeBase):
    """Renders the value a branch of the workflow hands back."""

    type: Literal["output"]
    value: str
    format: Literal["markdown", "text", "json"] = "markdown"

    template_fields = ("value",)
