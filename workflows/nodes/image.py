import re
from typing import Literal

from pydantic import Field

from .base import NodeBase, SourceRef


class ImageNode(NodeBase):
    """Generates an image from a prompt with an image source; the image is stored as an
    artifact of the run (`<node id>.png`) and the output describes it."""

    type: Literal["image"]
    source: str
    prompt: str
    size: str | None = Field(None, pattern=r"^(auto|\d{2,5}x\d{2,5})$")  # the vendor's "WIDTHxHEIGHT"

    template_fields = ("prompt",)

    def source_refs(self):
        yield SourceRef(("source",), self.source, "image")

    def execute(self, ctx):
        prompt = ctx.render(self.prompt, "prompt")
        ctx.record_input({"source": self.source, "prompt": prompt, "size": self.size})
        image = ctx.generate_image(self.source, prompt=prompt, size=self.size)
        suffix = f"-{ctx.step.map_index}" if ctx.step.map_index is not None else ""
        extension = re.sub(r"[^a-z0-9]", "", image.media_type.split("/")[-1]) or "bin"
        name = f"{self.id}{suffix}.{extension}"
        ctx.save_artifact(name, image.media_type, image.data)
        return {"artifact": name, "content_type": image.media_type, "size": len(image.data),
                "model": image.model, "revised_prompt": image.revised_prompt}
