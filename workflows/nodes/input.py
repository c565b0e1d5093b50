from typing import Literal

from .base import NodeBase


class InputNode(NodeBase):
    """The start of every workflow; its output is the run's inputs."""

    type: Literal["input"]
    instant = True

    def execute(self, ctx):
        return ctx.inputs
