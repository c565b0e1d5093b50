import json
from typing import Literal

from pydantic import Field, model_validator
from pydantic_core import PydanticCustomError

from .base import NodeBase


class AggregatorNode(NodeBase):
    """Combines the outputs of upstream nodes that ran.

    `inputs_from` lists the nodes to read (default: every direct predecessor). Modes: "dict"
    ({id: output}), "list" (outputs in that order), "join" (text joined by `separator`),
    "template" (renders `template`, which sees the usual context).
    """

    type: Literal["aggregator"]
    instant = True
    inputs_from: list[str] = Field(default_factory=list)
    mode: Literal["dict", "list", "join", "template"] = "dict"
    separator: str = "\n\n"
    template: str | None = None

    template_fields = ("template",)

    @model_validator(mode="after")
    def _check_template(self):
        if self.mode == "template" and not self.template:
            raise PydanticCustomError(
                "aggregator.template_required",
                "an aggregator in template mode needs a template",
                {"field": ("template",)},
            )
        return self

    def node_refs(self):
        for i, node_id in enumerate(self.inputs_from):
            yield ("inputs_from", i), node_id

    def execute(self, ctx):
        names = self.inputs_from or ctx.predecessors()
        outputs = ctx.outputs_of(names)
        ctx.record_input({"from": list(outputs)})
        if self.mode == "dict":
            return outputs
        if self.mode == "list":
            return list(outputs.values())
        if self.mode == "join":
            return self.separator.join(v if isinstance(v, str) else json.dumps(v, ensure_ascii=False)
                                       for v in outputs.values())
        return ctx.render(self.template, "template")
