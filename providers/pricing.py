"""What a call costs: prices per million input and output tokens, by provider and model.

The table is seeded with public list prices; a source may override them with
`options.pricing = {"input": usd_per_million, "output": usd_per_million}` (the mock provider
uses that to rehearse budgets).
"""
from decimal import Decimal

MILLION = Decimal(1_000_000)

# (provider, model prefix) -> (input, output) USD per million tokens.
LIST_PRICES = {
    ("openai", "gpt-4o-mini"): ("0.15", "0.60"),
    ("openai", "gpt-4o"): ("2.50", "10.00"),
    ("openai", "gpt-4.1-mini"): ("0.40", "1.60"),
    ("openai", "gpt-4.1"): ("2.00", "8.00"),
    ("anthropic", "claude-3-5-haiku"): ("0.80", "4.00"),
    ("anthropic", "claude-sonnet-4"): ("3.00", "15.00"),
    ("anthropic", "claude-opus-4"): ("15.00", "75.00"),
}


def prices(provider, model, options=None):
    override = (options or {}).get("pricing")
    if override:
        return Decimal(str(override.get("input", 0))), Decimal(str(override.get("output", 0)))
    best = None
    for (vendor, prefix), pair in LIST_PRICES.items():
        if vendor == provider and model.startswith(prefix) and (best is None or len(prefix) > len(best[0])):
            best = (prefix, pair)
    if best is None:
        return Decimal(0), Decimal(0)
    return Decimal(best[1][0]), Decimal(best[1][1])


def cost(provider, model, options, usage):
    price_in, price_out = prices(provider, model, options)
    return (price_in * usage.input_tokens + price_out * usage.output_tokens) / MILLION


def estimate(provider, model, options, prompt, max_tokens):
    """An upper estimate of a call before it is made: the prompt at ~4 characters a token
    and the whole output allowance (1,000 tokens when none is set)."""
    price_in, price_out = prices(provider, model, options)
    return (price_in * (len(prompt) // 4 + 1) + price_out * (max_tokens or 1000)) / MILLION
