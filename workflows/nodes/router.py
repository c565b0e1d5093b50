import re
from typing import Literal

from pydantic import Field, model_validator
from pydantic_core import PydanticCustomError

from .base import NAME_PATTERN, NodeBase, SourceRef, StepFailed, StrictModel, TemplateField


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
    instant = True

    def runs_instantly(self):
        return self.mode == "rules" and super().runs_instantly()

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

    def execute(self, ctx):
        if self.mode == "llm":
            return {"route": self._classify(ctx)}
        for i, route in enumerate(self.routes):
            if route.when is not None and ctx.evaluate(route.when, f"routes[{i}].when"):
                return {"route": route.name}
        if self.default is None:
            raise StepFailed("no route matched and the router has no default")
        return {"route": self.default}

    def _classify(self, ctx):
        names = [route.name for route in self.routes]
        question = ctx.render(self.prompt, "prompt") if self.prompt else ""
        menu = "\n".join(f"- {r.name}: {r.description}" if r.description else f"- {r.name}" for r in self.routes)
        prompt = (f"{question}\n\nChoose the one route that fits best:\n{menu}\n\n"
                  f"Answer with the route name only, one of: {', '.join(names)}.")
        ctx.record_input({"source": self.source, "prompt": prompt})
        answer = ctx.call_llm(self.source, prompt=prompt, temperature=0).text
        return choose_route(answer, names, self.default)


def choose_route(answer, names, default=None):
    """The route named in a model's answer: the earliest whole-word mention wins."""
    found = []
    for name in names:
        match = re.search(rf"(?<![\w-]){re.escape(name)}(?![\w-])", answer, re.IGNORECASE)
        if match:
            found.append((match.start(), name))
    if found:
        return min(found)[1]
    if default is not None:
        return default
    raise StepFailed(f"the model answered {answer[:80]!r}, which names none of the routes", retryable=True)
