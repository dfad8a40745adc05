"""The analytics API under /api/analytics/: thin DRF views over eventtrail.analytics.compute."""
from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

from django.core.exceptions import PermissionDenied
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework.request import Request
from rest_framework.response import Response

from eventtrail.analytics import access, compute
from eventtrail.analytics.params import Params, parse
from eventtrail.api.query import QueryError
from eventtrail.api.views import StoreView
from eventtrail.stores import Store

PERIOD = {"from", "to"}
SERIES = PERIOD | {"interval"}


def _need(p: Params, name: str) -> str:
    value = getattr(p, name)
    if not value:
        raise QueryError(name, "is required")
    return str(value)


def _user(request: Request, p: Params) -> str:
    subject = p.user or access.own_id(request.user)
    access.check_user(request.user, subject)
    return subject


def _read_article(store: Store, request: Request, p: Params) -> str:
    """Who read an article is only shown to staff, or to someone who read it themselves: an
    article of a community you never visited (or a draft) tells you nothing about its readers."""
    article = _need(p, "article")
    if not access.sees_everything(request.user):
        own = compute.where(actions=[compute.VIEW], user=access.own_id(request.user),
                            target=article, timeless=True)
        if not store.tally(own, compute.TARGET, size=1):
            raise PermissionDenied("recommendations are for articles you have read")
    return article


def _community(request: Request, p: Params, required: bool = False) -> str | None:
    if required:
        _need(p, "community")
    access.check_community(request.user, p.community)
    return p.community


# name -> (parameters taken, default from, default interval, computation)
Analytic = Callable[[Store, Request, Params], dict[str, Any]]
ANALYTICS: dict[str, tuple[set[str], str | None, str, Analytic]] = {
    "trending": ({"to", "community", "days", "half_life", "size"}, None, "day",
                 lambda s, r, p: compute.trending(s, p, _community(r, p, True))),
    "most-viewed": (PERIOD | {"community", "size"}, None, "day",
                    lambda s, r, p: compute.most_viewed(s, p, community=_community(r, p))),
    "user-most-viewed": (PERIOD | {"user", "size"}, None, "day",
                         lambda s, r, p: compute.most_viewed(s, p, user=_user(r, p))),
    "user-articles": (PERIOD | {"user"}, None, "day",
                      lambda s, r, p: compute.user_articles(s, p, _user(r, p))),
    "active-users": (SERIES | {"community"}, "now-30d/d", "day",
                     lambda s, r, p: compute.active_users(s, p, _community(r, p))),
    "events-over-time": (SERIES | {"community"}, "now-30d/d", "day",
                         lambda s, r, p: compute.events_over_time(s, p,
                                                                  community=_community(r, p))),
    "user-events-over-time": (SERIES | {"user"}, "now-30d/d", "day",
                              lambda s, r, p: compute.events_over_time(s, p, user=_user(r, p))),
    "top-members": (PERIOD | {"community", "size"}, "now-30d/d", "day",
                    lambda s, r, p: compute.top_members(s, p, _community(r, p))),
    "content-changes": (SERIES | {"community"}, "now-30d/d", "day",
                        lambda s, r, p: compute.content_changes(s, p, _community(r, p))),
    "new-returning": (SERIES | {"community"}, "now-30d/d", "day",
                      lambda s, r, p: compute.new_returning(s, p, _community(r, p))),
    "reading-depth": (PERIOD | {"community", "size"}, None, "day",
                      lambda s, r, p: compute.reading_depth(s, p, _community(r, p))),
    "video-completion": (PERIOD | {"community", "size"}, None, "day",
                         lambda s, r, p: compute.video_completion(s, p, _community(r, p))),
    "also-read": ({"to", "article", "user", "days", "size"}, None, "day",
                  lambda s, r, p: compute.also_read(s, p, _read_article(s, r, p), _user(r, p))),
    "communities-for-you": ({"to", "user", "days", "size"}, None, "day",
                            lambda s, r, p: compute.communities_for_you(s, p, _user(r, p))),
}

# Recommendations look further back than trending: co-reading needs more than ten days of data.
DEFAULT_DAYS = {"also-read": 30, "communities-for-you": 30}

DESCRIPTION = """Analytics computed from the event log; bots are excluded unless
`include_bots=true`. Dates take ISO-8601 or date math (`now-7d`, `now/d`), intervals `hour`,
`day`, `week`, `month` or e.g. `6h`, exactly as in /api/events/aggregate/. A user sees their own
analytics (`user` defaults to them), moderators their communities', staff everything;
anything else is a 403. Unknown parameters are a 400 naming the parameter; an unreachable
store is a 503. Definitions of each score are in docs/analytics.md."""


class AnalyticsView(StoreView):
    analytic: ClassVar[str] = ""

    def get(self, request: Request) -> Response:
        allowed, default_from, default_interval, run = ANALYTICS[self.analytic]
        p = parse(request.query_params, allowed, default_from=default_from,
                  default_interval=default_interval,
                  default_days=DEFAULT_DAYS.get(self.analytic))
        return Response(run(self.store(), request, p))


def _parameters(allowed: set[str]) -> list[OpenApiParameter]:
    return [OpenApiParameter(name, OpenApiTypes.STR, description="See the description above.")
            for name in sorted(allowed | {"include_bots", "tz"})]


def view_for(name: str) -> Any:
    allowed = ANALYTICS[name][0]
    schema = extend_schema(operation_id=f"analytics_{name.replace('-', '_')}",
                           summary=name.replace("-", " ").capitalize(), description=DESCRIPTION,
                           parameters=_parameters(allowed), responses={200: OpenApiTypes.OBJECT})

    def get(self: AnalyticsView, request: Request) -> Response:
        return AnalyticsView.get(self, request)

    cls: Any = type(f"Analytics_{name}", (AnalyticsView,), {"analytic": name, "get": schema(get)})
    return cls.as_view()
