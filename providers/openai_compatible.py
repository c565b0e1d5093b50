"""Servers and vendors that speak OpenAI's chat API at their own URL, through the OpenAI SDK.

Each preset is a provider of its own name ("ollama", "vllm", "lmstudio", "deepseek", "groq",
"gemini"): its base URL is the preset's unless the source sets `base_url` (an Ollama on
another machine, say). The provider "openai_compatible" serves any other such endpoint: it
takes the source's `base_url`, or a preset's with `options.preset`.

Adding a vendor that speaks this API is one more `Preset` line. Differences from OpenAI
itself: the output limit is sent as `max_tokens`, a preset may not report usage in streams
(then usage is estimated and marked so), may know only JSON mode (then the schema is given
in the system prompt), and local servers need no key.

Options read here, on top of OpenAI's (providers/openai.py): `preset`, and `stream_usage` /
`structured_output` to override what the preset says.
"""
from dataclasses import dataclass
from typing import Literal

from .base import ProviderError, register
from .openai import OpenAIProvider


@dataclass(frozen=True)
class Preset:
    name: str
    title: str
    base_url: str
    needs_key: bool = True
    # Whether its streams accept stream_options.include_usage. Where that is not known to
    # work, usage is estimated instead: an unknown parameter may be refused outright.
    stream_usage: bool = True
    structured_output: Literal["json_schema", "json_object"] = "json_schema"


PRESETS = {preset.name: preset for preset in (
    Preset("ollama", "Ollama", "http://localhost:11434/v1", needs_key=False),
    Preset("vllm", "vLLM", "http://localhost:8000/v1", needs_key=False),
    Preset("lmstudio", "LM Studio", "http://localhost:1234/v1", needs_key=False, stream_usage=False),
    Preset("deepseek", "DeepSeek", "https://api.deepseek.com/v1", structured_output="json_object"),
    Preset("groq", "Groq", "https://api.groq.com/openai/v1"),
    Preset("gemini", "Gemini", "https://generativelanguage.googleapis.com/v1beta/openai/", stream_usage=False),
)}


@register
class OpenAICompatibleProvider(OpenAIProvider):
    name = "openai_compatible"
    preset: Preset | None = None  # set on each preset's own provider class
    max_tokens_param = "max_tokens"  # what every compatible server knows
    default_image_model = None
    default_embedding_model = None

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        preset = self.preset
        if preset is None and self.options.get("preset") in PRESETS:
            preset = PRESETS[self.options["preset"]]
        if preset is not None:
            self.default_base_url = preset.base_url
            self.needs_key = preset.needs_key
            self.stream_usage = preset.stream_usage
            self.structured_output = preset.structured_output
        else:
            self.default_base_url = None
            self.needs_key = False  # a private server may want none; a vendor says 401 if it does

    def endpoint(self):
        """The base URL calls go to: the source's, else the preset's. Raises ProviderError
        when there is neither, or the named preset does not exist."""
        wanted = self.options.get("preset")
        if self.preset is None and wanted and wanted not in PRESETS:
            raise ProviderError(f"unknown preset {wanted!r}: known presets are {', '.join(sorted(PRESETS))}",
                                provider=self.name, model=self.model)
        base_url = self.base_url or self.default_base_url
        if not base_url:
            raise ProviderError("no base_url: give the source a base_url, or options.preset "
                                f"(one of {', '.join(sorted(PRESETS))})", provider=self.name, model=self.model)
        return base_url


def _preset_provider(preset):
    cls = type(f"{preset.title.replace(' ', '')}Provider", (OpenAICompatibleProvider,), {
        "name": preset.name, "preset": preset, "__module__": __name__,
        "__doc__": f"{preset.title}, at {preset.base_url} unless the source sets base_url.",
    })
    return register(cls)


for _preset in PRESETS.values():
    _preset_provider(_preset)
