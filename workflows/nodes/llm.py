from typing import Any, Literal

from pydantic import Field

from .base import NodeBase, SourceRef


class LlmNode(NodeBase):
    """Sends a prompt to an LLM source; its output is the text (or parsed JSON) it returned."""

    type: Literal["llm"]
    source: str
    prompt: str
    system: str = ""
    temperature: float | None = Field(None, ge=0, le=2)
    max_tokens: int | None = Field(None, gt=0)
    output_format: Literal["text", "json"] = "text"
    json_schema: dict[str, Any] | None = None
    stream: bool = True

    template_fields = ("prompt", "system")

    def source_refs(self):
        yield SourceRef(("source",), self.source, "llm")
