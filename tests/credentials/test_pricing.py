from decimal import Decimal

from providers import pricing
from providers.base import Usage
from providers.models import ModelPrice


def test_the_table_is_seeded_with_the_list_prices(db):
    seeded = {(p.provider, p.model_prefix): (p.input_per_million, p.output_per_million)
              for p in ModelPrice.objects.all()}

    assert seeded == {key: (Decimal(a), Decimal(b)) for key, (a, b) in pricing.LIST_PRICES.items()}


def test_the_longest_matching_prefix_wins(db):
    assert pricing.prices("openai", "gpt-4o-mini-2024-07-18") == (Decimal("0.15"), Decimal("0.60"))
    assert pricing.prices("openai", "gpt-4o-2024-08-06") == (Decimal("2.50"), Decimal("10.00"))


def test_an_edited_row_prices_the_next_call(db):
    row = ModelPrice.objects.get(provider="openai", model_prefix="gpt-4o")
    pricing.prices("openai", "gpt-4o")  # fills the cache
    row.input_per_million = Decimal("5.00")
    row.save()

    assert pricing.prices("openai", "gpt-4o") == (Decimal("5.00"), Decimal("10.00"))
    usage = Usage(input_tokens=1_000_000, output_tokens=500_000)
    assert pricing.cost("openai", "gpt-4o", {}, usage) == Decimal("10.00")


def test_a_new_row_for_a_longer_prefix_takes_over(db):
    ModelPrice.objects.create(provider="openai", model_prefix="gpt-4o-2024-05", input_per_million=Decimal("5"),
                              output_per_million=Decimal("15"))

    assert pricing.prices("openai", "gpt-4o-2024-05-13") == (Decimal("5"), Decimal("15"))
    assert pricing.prices("openai", "gpt-4o-2024-08-06") == (Decimal("2.50"), Decimal("10.00"))


def test_the_list_prices_cover_what_the_table_does_not(db):
    ModelPrice.objects.filter(provider="anthropic").delete()

    assert pricing.prices("anthropic", "claude-sonnet-4-20250514") == (Decimal("3.00"), Decimal("15.00"))
    assert pricing.prices("mock", "mock-1") == (Decimal(0), Decimal(0))


def test_the_source_override_wins_over_the_table(db):
    options = {"pricing": {"input": 1, "output": 2}}

    assert pricing.prices("openai", "gpt-4o", options) == (Decimal(1), Decimal(2))
    assert pricing.estimate("openai", "gpt-4o", options, "x" * 400, 10) == (Decimal(101) + Decimal(20)) / pricing.MILLION


def test_lookups_are_served_from_memory_once_loaded(db, django_assert_num_queries):
    pricing.prices("openai", "gpt-4.1")

    with django_assert_num_queries(0):
        for _ in range(100):
            pricing.prices("openai", "gpt-4.1-mini")
            pricing.cost("anthropic", "claude-opus-4", {}, Usage(10, 10))


def test_the_admin_edits_prices(client, db):
    from accounts.models import User

    root = User.objects.create_superuser("root@agentflow.test", "pw-not-used-here-123")
    client.force_login(root)
    row = ModelPrice.objects.get(provider="anthropic", model_prefix="claude-opus-4")
    pricing.prices("anthropic", "claude-opus-4")  # cached before the edit

    response = client.post(f"/admin/providers/modelprice/{row.pk}/change/", {
        "provider": "anthropic", "model_prefix": "claude-opus-4",
        "input_per_million": "12.50", "output_per_million": "60",
    })

    assert response.status_code == 302
    row.refresh_from_db()
    assert row.input_per_million == Decimal("12.50")
    assert pricing.prices("anthropic", "claude-opus-4-1") == (Decimal("12.50"), Decimal("60"))
    listing = client.get("/admin/providers/modelprice/").content.decode()
    assert "claude-opus-4" in listing and 'name="form-0-input_per_million"' in listing


def test_the_admin_refuses_a_negative_price(client, db):
    from accounts.models import User

    client.force_login(User.objects.create_superuser("root@agentflow.test", "pw-not-used-here-123"))
    row = ModelPrice.objects.get(provider="openai", model_prefix="gpt-4o")

    response = client.post(f"/admin/providers/modelprice/{row.pk}/change/", {
        "provider": "openai", "model_prefix": "gpt-4o", "input_per_million": "-1", "output_per_million": "10",
    })

    assert response.status_code == 200
    row.refresh_from_db()
    assert row.input_per_million == Decimal("2.50")
