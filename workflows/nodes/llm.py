import json
from typing import Any, Literal

from pydantic import Field

from .base import NodeBase, SourceRef, StepFailed


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

    def execute(self, ctx):
        prompt = ctx.render(self.prompt, "prompt")
        system = ctx.render(self.system, "system") if self.system else ""
        ctx.record_input({"source": self.source, "system": system, "prompt": prompt})
        completion = ctx.call_llm(
            self.source, prompt=prompt, system=system, temperature=self.temperature,
            max_tokens=self.max_tokens, json_schema=self.json_schema, stream=self.stream,
        )
        if self.output_format == "json":
            return parse_json_output(completion.text)
        return completion.text


def parse_json_output(text):
    """The JSON object a model returned, tolerating a fenced ```json block around it."""
    body = text.strip()
    if body.startswith("```"):
        body = body.strip("`")
        body = body[4:] if body.startswith("json") else body
    try:
        return json.loads(body)
    except ValueError as exc:
        raise StepFailed(f"the model did not return valid JSON: {exc}", retryable=True)
