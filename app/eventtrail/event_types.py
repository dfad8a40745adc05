"""Event types every Django site has: authentication, page views and browser events."""
from __future__ import annotations

from typing import Any

from django.contrib.auth.signals import user_logged_in, user_logged_out, user_login_failed

from eventtrail.registry import EventType, browser_event, registry, signal_event


def _login(sender: Any, request: Any = None, user: Any = None, **kwargs: Any) -> dict[str, Any]:
    return {"event.outcome": "success"}


def _login_failed(sender: Any, credentials: Any = None, **kwargs: Any) -> dict[str, Any]:
    # Only the username that was tried; Django already masks the password, and we never read it.
    name = (credentials or {}).get("username")
    fields: dict[str, Any] = {"event.outcome": "failure"}
    if isinstance(name, str) and name:
        fields["user.name"] = name[:150]
    return fields


signal_event("user.login", user_logged_in, _login, category="authentication", type="start",
             description="A user logged in.")
signal_event("user.logout", user_logged_out, _login, category="authentication", type="end",
             description="A user logged out.")
signal_event("user.login_failed", user_login_failed, _login_failed, category="authentication",
             type="start", description="A login attempt failed.")

registry.add(EventType(action="page.view", key="url", description="Any other GET (PAGE_VIEW)."))

browser_event("browser.scroll", {"eventtrail.browser.scroll_depth": int},
              description="Scroll depth reached: 25, 50, 75 or 100 percent, once each per view.")
browser_event("browser.resize", {"eventtrail.browser.viewport.width": int,
                                 "eventtrail.browser.viewport.height": int},
              description="The window was resized (debounced).")
browser_event("browser.visibility", {"eventtrail.browser.visibility": str,
                                     "eventtrail.browser.time_on_page": int},
              description="The page was hidden or shown; time on page so far.")
_VIDEO = {"eventtrail.video.id": str, "eventtrail.video.position": float,
          "eventtrail.video.duration": float}
for _action, _what in (("video.play", "started"), ("video.pause", "paused"),
                       ("video.seek", "seeked"), ("video.ended", "ended")):
    browser_event(_action, _VIDEO, description=f"An HTML5 video {_what}.")
browser_event("video.progress", {**_VIDEO, "eventtrail.video.progress": int},
              description="A video reached a quartile: 25, 50, 75 or 100 percent.")
