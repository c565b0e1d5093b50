"""What a call costs: prices per million input and output tokens, by provider and model.

Prices come from the `ModelPrice` table (editable in the admin, seeded with the list prices
below), the longest model prefix winning; a model the table does not price falls back to
LIST_PRICES, and one neither prices costs nothing. A source may override both with
`options.pricing = {"input": usd_per_million, "output": usd_per_million}` (the mock provider
uses that to rehearse budgets).

The table is read at most once every CACHE_SECONDS per process, so the engine does not query
it per call; an edit in this process takes effect at once, in others within that time.
"""
import threading
import time
from decimal import Decimal

from .models import ModelPrice

MILLION = Decimal(1_000_000)
CACHE_SECONDS = 60

# (provider, model prefix) -> (input, output) USD per million tokens. The seed of the
# ModelPrice table, and the fallback for models it does not price.
LIST_PRICES = {
    ("openai", "gpt-4o-mini"): ("0.15", "0.60"),
    ("openai", "gpt-4o"): ("2.50", "10.00"),
    ("openai", "gpt-4.1-nano"): ("0.10", "0.40"),
    ("openai", "gpt-4.1-mini"): ("0.40", "1.60"),
    ("openai", "gpt-4.1"): ("2.00", "8.00"),
    ("openai", "gpt-5-nano"): ("0.05", "0.40"),
    ("openai", "gpt-5-mini"): ("0.25", "2.00"),
    ("openai", "gpt-5"): ("1.25", "10.00"),
    ("openai", "o4-mini"): ("1.10", "4.40"),
    ("openai", "gpt-image-1"): ("5.00", "40.00"),
    ("openai", "text-embedding-3-small"): ("0.02", "0"),
    ("openai", "text-embedding-3-large"): ("0.13", "0"),
    ("anthropic", "claude-3-5-haiku"): ("0.80", "4.00"),
    ("anthropic", "claude-haiku-4"): ("1.00", "5.00"),
    ("anthropic", "claude-sonnet-4"): ("3.00", "15.00"),
    ("anthropic", "claude-opus-4-5"): ("5.00", "25.00"),
    ("anthropic", "claude-opus-4"): ("15.00", "75.00"),
    ("deepseek", "deepseek-chat"): ("0.27", "1.10"),
    ("deepseek", "deepseek-reasoner"): ("0.55", "2.19"),
    ("groq", "llama-3.1-8b-instant"): ("0.05", "0.08"),
    ("groq", "llama-3.3-70b-versatile"): ("0.59", "0.79"),
    ("gemini", "gemini-2.0-flash"): ("0.10", "0.40"),
    ("gemini", "gemini-2.5-flash"): ("0.30", "2.50"),
    ("gemini", "gemini-2.5-pro"): ("1.25", "10.00"),
}

_lock = threading.Lock()
_table: dict | None = None
_loaded_at = 0.0


def clear_cache():
    """Forget the table read so far; the next lookup reads it again."""
    global _table
    with _lock:
        _table = None


def _price_table():
    """{(provider, prefix): (input, output)} from the database, cached for CACHE_SECONDS."""
    global _table, _loaded_at
    with _lock:
        if _table is not None and time.monotonic() - _loaded_at < CACHE_SECONDS:
            return _table
    rows = ModelPrice.objects.values_list("provider", "model_prefix", "input_per_million", "output_per_million")
    table = {(provider, prefix): (price_in, price_out) for provider, prefix, price_in, price_out in rows}
    with _lock:
        _table, _loaded_at = table, time.monotonic()
    return table


def _longest_match(table, provider, model):
    best = None
    for (vendor, prefix), pair in table.items():
        if vendor == provider and model.startswith(prefix) and (best is None or len(prefix) > len(best[0])):
            best = (prefix, pair)
    return best[1] if best else None


def prices(provider, model, options=None):
    """(input, output) USD per million tokens as Decimals; (0, 0) for an unpriced model."""
    override = (options or {}).get("pricing")
    if override:
        return Decimal(str(override.get("input", 0))), Decimal(str(override.get("output", 0)))
    model = model or ""
    pair = _longest_match(_price_table(), provider, model) or _longest_match(LIST_PRICES, provider, model)
    if pair is None:
        return Decimal(0), Decimal(0)
    return Decimal(str(pair[0])), Decimal(str(pair[1]))


def cost(provider, model, options, usage):
    price_in, price_out = prices(provider, model, options)
    return (price_in * usage.input_tokens + price_out * usage.output_tokens) / MILLION


def estimate(provider, model, options, prompt, max_tokens):
    """An upper estimate of a call before it is made: the prompt at ~4 characters a token
    and the whole output allowance (1,000 tokens when none is set)."""
    price_in, price_out = prices(provider, model, options)
    return (price_in * (len(prompt) // 4 + 1) + price_out * (max_tokens or 1000)) / MILLION
