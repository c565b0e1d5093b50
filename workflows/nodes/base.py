"""What every node type shares: common fields, and the hooks the validator walks.

A node type is one module in this package holding a `NodeBase` subclass whose `type` is a
one-value Literal (the discriminator). Its class attributes `template_fields` and
`expression_fields` name the string fields rendered as templates or evaluated as bare
expressions. Anything else the validator must see (router routes, sources called, nodes
named, a map's inline node) is declared by overriding `templates()`, `source_refs()`,
`node_refs()` or `inline_nodes()`: the validator knows node types only through these hooks.
"""
from collections.abc import Iterator
from typing import ClassVar, NamedTuple, get_args

from pydantic import BaseModel, ConfigDict, Field

NODE_ID_PATTERN = r"^[a-z][a-z0-9_]*$"
NAME_PATTERN = r"^[a-z][a-z0-9_-]*$"


class StrictModel(BaseModel):
    """Base of every spec model: unknown fields are errors and "1" is not an int."""

    model_config = ConfigDict(
        extra="forbid",
        strict=True,
        allow_inf_nan=False,
        validate_by_name=True,
        validate_by_alias=True,
        serialize_by_alias=True,
    )


class RetryPolicy(StrictModel):
    max_attempts: int = Field(3, ge=1, le=20)
    backoff_s: float = Field(1.0, ge=0)
    max_backoff_s: float = Field(60, ge=0)
    jitter: bool = True


class TemplateField(NamedTuple):
    """One template or expression inside a node, `loc` relative to the node."""

    loc: tuple[str | int, ...]
    source: str
    expression: bool = False


class SourceRef(NamedTuple):
    """A field naming an entry of `spec.sources`, and the source kind it needs (or None)."""

    loc: tuple[str | int, ...]
    name: str
    kind: str | None = "llm"


class NodeBase(StrictModel):
    id: str = Field(pattern=NODE_ID_PATTERN, max_length=64)
    type: str
    title: str = ""
    description: str = ""
    retry: RetryPolicy | None = None
    timeout_s: float | None = Field(None, gt=0)
    queue: str | None = None
    lane: str | None = None

    template_fields: ClassVar[tuple[str, ...]] = ()
    expression_fields: ClassVar[tuple[str, ...]] = ()
    # True for node types whose body only computes (no provider call, no waiting on I/O):
    # the engine runs those on its own thread, in the same transaction as their start.
    instant: ClassVar[bool] = False

    def runs_instantly(self) -> bool:
        return self.instant and self.retry is None and self.timeout_s is None

    @classmethod
    def type_name(cls) -> str:
        return get_args(cls.model_fields["type"].annotation)[0]

    def templates(self) -> Iterator[TemplateField]:
        """Every non-empty template and expression of this node (inline nodes excluded)."""
        for name in self.template_fields:
            if value := getattr(self, name):
                yield TemplateField((name,), value)
        for name in self.expression_fields:
            if (value := getattr(self, name)) is not None:
                yield TemplateField((name,), value, expression=True)

    def source_refs(self) -> Iterator[SourceRef]:
        """Sources this node calls (its inline nodes report their own)."""
        return iter(())

    def node_refs(self) -> Iterator[tuple[tuple[str | int, ...], str]]:
        """(loc, node id) for nodes this config names outside templates; they must be upstream."""
        return iter(())

    def inline_nodes(self) -> Iterator[tuple[tuple[str | int, ...], "NodeBase"]]:
        """Nodes nested in this one, run per item with `item` and `index` in scope."""
        return iter(())


class StepFailed(Exception):
    """A node could not produce its output. `retryable` failures may succeed if tried again."""

    def __init__(self, message, *, retryable=False):
        super().__init__(message)
        self.retryable = retryable


class WaitForHuman(Exception):
    """A human node has no decision yet: the step waits, and its branch with it."""

    def __init__(self, prompt=""):
        super().__init__("waiting for a human decision")
        self.prompt = prompt


class NodeContext:
    """What a node sees while it executes; the run engine provides the implementation.

    Templates and expressions are rendered against {inputs, nodes, run} (plus item and
    index inside a map); `nodes` holds only nodes that succeeded.
    """

    node_id: str
    spec: object
    inputs: dict

    def render(self, source: str, field: str) -> str:
        """Render a template of this node; `field` names it in error messages."""
        raise NotImplementedError

    def evaluate(self, expression: str, field: str):
        raise NotImplementedError

    def record_input(self, data: dict) -> None:
        """Store what the node was given (rendered prompt, ...), shown on the step."""
        raise NotImplementedError

    def call_llm(self, source: str, *, prompt: str, system: str = "", temperature=None, max_tokens=None,
                 json_schema=None, stream=False):
        """Call the named source (with its queue, retries of the provider and fallbacks);
        returns a providers.base.Completion. Raises StepFailed."""
        raise NotImplementedError

    def generate_image(self, source: str, *, prompt: str, size=None):
        """Generate an image with the named image source (queue, retries, fallbacks as for
        call_llm); returns a providers.base.ImageResult. Raises StepFailed."""
        raise NotImplementedError

    def save_artifact(self, name: str, content_type: str, data: bytes):
        """Store `data` as the run's artifact `name` now (replacing one of an earlier attempt)."""
        raise NotImplementedError

    def outputs_of(self, node_ids) -> dict:
        """{id: output} for those of `node_ids` that succeeded, in the given order."""
        raise NotImplementedError

    def predecessors(self) -> list[str]:
        raise NotImplementedError

    def decision(self):
        """A human node's recorded decision, or None."""
        raise NotImplementedError

    def map(self, node: "NodeBase", items: list, max_concurrency: int) -> list:
        """Run `node` once per item (item/index in scope), at most `max_concurrency` at once;
        returns their outputs in input order."""
        raise NotImplementedError
