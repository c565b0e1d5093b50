from typing import Literal

from pydantic import Field, model_validator
from pydantic_core import PydanticCustomError

from .base import NAME_PATTERN, NodeBase, SourceRef, StrictModel, TemplateField


class Route(StrictModel):
    name: str = Field(pattern=NAME_PATTERN, max_length=64)
    when: str | None = None  # an expression, used in "rules" mode
    description: str = ""  # tells the model what the route is for, in "llm" mode


class RouterNode(NodeBase):
    """Picks one route; its output is {"route": name}, which outgoing edges test.

    In "rules" mode the first route whose `when` holds wins, else `default`. In "llm" mode the
    `source` model chooses among the routes from their descriptions and the `prompt`.
    """

    type: Literal["router"]
    mode: Literal["rules", "llm"] = "rules"
    routes: list[Route] = Field(min_length=1)
    default: str | None = None
    source: str | None = None
    prompt: str = ""

    template_fields = ("prompt",)

    @model_validator(mode="after")
    def _check_routes(self):
        names = [route.name for route in self.routes]
        for i, name in enumerate(names):
            if name in names[:i]:
                raise PydanticCustomError(
                    "router.duplicate_route",
                    "route '{name}' is defined twice",
                    {"name": name, "field": ("routes", i, "name")},
                )
        if self.default is not None and self.default not in names:
            raise PydanticCustomError(
                "reference.unknown_route",
                "default route '{default}' is not one of the routes: {routes}",
                {"default": self.default, "routes": ", ".join(names), "field": ("default",)},
            )
        if self.mode == "llm" and not self.source:
            raise PydanticCustomError(
                "router.source_required",
                "a router in llm mode needs a source",
                {"field": ("source",)},
            )
        return self

    def templates(self):
        yield from super().templates()
        for i, route in enumerate(self.routes):
            if route.when is not None:
                yield TemplateField(("routes", i, "when"), route.when, expression=True)

    def source_refs(self):
        if self.source:
            yield SourceRef(("source",), self.source, "llm")
