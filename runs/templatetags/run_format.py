"""Filters the run pages share: durations, money, token counts, status icons, JSON for
<pre> blocks and model output rendered from Markdown."""
import json
from decimal import Decimal

import nh3
from django import template
from django.utils import timezone
from django.utils.html import format_html
from django.utils.safestring import mark_safe
from markdown_it import MarkdownIt

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


# Every status is written out next to its icon; the icon and colour only reinforce the word.
STATUS_ICONS = {
    "queued": "◷", "pending": "○", "running": "▶", "waiting": "‖", "succeeded": "✓",
    "failed": "✕", "skipped": "↷", "cancelled": "⊘", "": "·",
}


@register.filter
def status_icon(status):
    """The symbol shown before a run's or step's status word ("·" for "not started")."""
    return STATUS_ICONS.get(status or "", "·")


# Model output is Markdown. CommonMark with raw HTML disabled escapes every tag the text
# holds; nh3 then keeps only the tags and attributes below, so no markup a model (or a
# prompt injected into it) writes reaches the page. Images are off: an image URL in model
# output would be fetched by the reader's browser as soon as the page shows it.
_markdown = MarkdownIt("commonmark", {"html": False, "breaks": True}).enable(["table", "strikethrough"]).disable("image")
_ALLOWED_TAGS = {
    "p", "br", "hr", "h1", "h2", "h3", "h4", "h5", "h6", "strong", "em", "s", "del", "code", "pre", "blockquote",
    "ul", "ol", "li", "a", "table", "thead", "tbody", "tr", "th", "td",
}
_ALLOWED_ATTRIBUTES = {"a": {"href", "title"}, "ol": {"start"}}
MARKDOWN_LIMIT = 200_000  # characters rendered; the whole text stays in the step and the artifacts


@register.filter
def markdown(text, heading_level=4):
    """`text` rendered from Markdown to safe HTML, its top heading level made
    <h`heading_level`> (the others shifted alike) so they sit under the page's own headings.

    Links keep only http(s) and mailto targets (a relative one loses its target: model
    output never links into this site); text past MARKDOWN_LIMIT characters is cut with a
    note. Non-text values are shown as escaped JSON."""
    if not isinstance(text, str):
        return format_html('<pre class="json">{}</pre>', pretty(text))
    note = ""
    if len(text) > MARKDOWN_LIMIT:
        text, note = text[:MARKDOWN_LIMIT], f"\n\n*(Cut at {MARKDOWN_LIMIT:,} characters.)*"
    tokens = _markdown.parse(text + note)
    headings = [token for token in tokens if token.type in ("heading_open", "heading_close")]
    if headings:
        # The text's top heading level becomes `heading_level`, the others keep their distance.
        shift = int(heading_level) - min(int(token.tag[1]) for token in headings)
        for token in headings:
            token.tag = f"h{max(1, min(int(token.tag[1]) + shift, 6))}"
    html = _markdown.renderer.render(tokens, _markdown.options, {})
    return mark_safe(nh3.clean(html, tags=_ALLOWED_TAGS, attributes=_ALLOWED_ATTRIBUTES,
                               url_schemes={"http", "https", "mailto"}, url_relative="deny",
                               link_rel="nofollow noopener noreferrer"))


@register.filter
def entries(value):
    """A dict's (key, value) pairs as a list (a template's `value.items` would read a key
    named "items" first); None for anything else."""
    return list(value.items()) if isinstance(value, dict) else None


@register.filter
def is_text(value):
    return isinstance(value, str)


@register.filter
def since(value):
    """Seconds from `value` (a datetime) to now; None when there is no value."""
    if value is None:
        return None
    return (timezone.now() - value).total_seconds()
