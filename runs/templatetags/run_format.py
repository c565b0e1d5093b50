"""Filters the run pages share: durations, money, token counts and JSON for <pre> blocks."""
import json
from decimal import Decimal

from django import template

register = template.Library()


@register.filter
def seconds(value):
    """A duration in seconds as "850 ms", "12.3 s", "4 min 05 s" or "2 h 03 min"; "—" when unknown."""
    if value is None or value == "":
        return "—"
    value = float(value)
    if value < 1:
        return f"{round(value * 1000)} ms"
    if value < 60:
        return f"{value:.1f} s"
    minutes, secs = divmod(int(round(value)), 60)
    if minutes < 60:
        return f"{minutes} min {secs:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


@register.filter
def milliseconds(value):
    return "—" if value is None else seconds(value / 1000)


@register.filter
def usd(value):
    """Dollars: four decimals below a dollar (model calls are cheap), two above."""
    value = Decimal(value or 0)
    return f"${value:,.4f}" if value < 1 else f"${value:,.2f}"


@register.filter
def number(value):
    return f"{int(value or 0):,}"


@register.filter
def pretty(value):
    """Text as it is; anything else as indented JSON. Escaped by the template, never marked safe."""
    if isinstance(value, str):
        return value
    return json.dumps(value, indent=2, ensure_ascii=False, default=str)
