"""Seed the price table with the list prices of providers/pricing.py at the time of writing
(copied, so later edits to that file do not change what this migration did)."""
from decimal import Decimal

from django.db import migrations

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


def seed(apps, schema_editor):
    ModelPrice = apps.get_model("providers", "ModelPrice")
    for (provider, prefix), (price_in, price_out) in LIST_PRICES.items():
        ModelPrice.objects.get_or_create(
            provider=provider,
            model_prefix=prefix,
            defaults={"input_per_million": Decimal(price_in), "output_per_million": Decimal(price_out)},
        )


def unseed(apps, schema_editor):
    ModelPrice = apps.get_model("providers", "ModelPrice")
    for provider, prefix in LIST_PRICES:
        ModelPrice.objects.filter(provider=provider, model_prefix=prefix).delete()


class Migration(migrations.Migration):
    dependencies = [("providers", "0001_initial")]

    operations = [migrations.RunPython(seed, unseed)]
