"""Template tags: ``{% eventtrail_script %}`` puts the browser script and its config on a page."""
from __future__ import annotations

from typing import Any

from django import template
from django.templatetags.static import static
from django.urls import NoReverseMatch, reverse
from django.utils.html import format_html, json_script
from django.utils.safestring import SafeString

from eventtrail.capture import internal, tracking_refused
from eventtrail.collect import make_token
from eventtrail.conf import get_config, resolved
from eventtrail.registry import registry

register = template.Library()

SCRIPT = "eventtrail/eventtrail.js"
CONFIG_ID = "eventtrail-config"


def _opted_out(request: Any) -> bool:
    hook = resolved("OPT_OUT")
    user = getattr(request, "user", None)
    return bool(hook is not None and user is not None and user.is_authenticated and hook(user))


def script_config(request: Any) -> dict[str, Any] | None:
    """What the script needs, or None when this page must not record anything."""
    config = get_config()
    if not config["ENABLED"] or not registry.browser or request is None:
        return None
    if tracking_refused(request.META) or _opted_out(request):
        return None
    try:
        endpoint = reverse("eventtrail:collect")
    except NoReverseMatch:
        return None
    return {
        "endpoint": endpoint,
        "token": make_token(request),
        "types": sorted(registry.browser),
        "maxEvents": config["COLLECT_MAX_EVENTS"],
        # The script re-checks what the browser says, for pages served from a cache.
        "dnt": bool(config["HONOR_DNT"]),
        "gpc": bool(config["HONOR_GPC"]),
    }


@register.simple_tag(takes_context=True)
def eventtrail_script(context: template.Context) -> SafeString:
    """The config as a JSON block plus the deferred script; nothing when tracking is refused."""
    rendered = SafeString("")
    with internal("eventtrail_script"):
        options = script_config(context.get("request"))
        if options is not None:
            rendered = format_html(
                '{}\n<script src="{}" defer></script>',
                json_script(options, CONFIG_ID),
                static(SCRIPT),
            )
    return rendered


@register.simple_tag(takes_context=True)
def eventtrail_kibana_link(context: template.Context, text: str = "Kibana") -> SafeString:
    """A link to Kibana for superusers only (Kibana is for super-admins); nothing otherwise."""
    url = get_config()["KIBANA_URL"]
    request = context.get("request")
    user = getattr(request, "user", None)
    if not url or user is None or not getattr(user, "is_superuser", False):
        return SafeString("")
    return format_html('<a href="{}" rel="noopener">{}</a>', url, text)


@register.simple_tag(takes_context=True)
def eventtrail_analytics_links(context: template.Context) -> list[tuple[str, str]]:
    """(text, url) of the analytics pages the current user may open: theirs, their
    moderated communities', and the site's for staff."""
    from eventtrail.analytics.pages import links_for

    request = context.get("request")
    return links_for(getattr(request, "user", None))
