"""The analytics API under /api/analytics/: thin DRF views over eventtrail.analytics.compute."""
from __future__ import annotations

from abc import ABCMeta, abstractmethod
from typing import Any, ClassVar

from django.core.exceptions import PermissionDenied
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_view
from rest_framework.request import Request
from rest_framework.response import Response

from eventtrail.analytics import access, compute
from eventtrail.analytics.params import Params, parse
from eventtrail.api.views import StoreView
from eventtrail.stores import Store
from eventtrail.stores.base import answering
from eventtrail.stores.query import QueryError

PERIOD = frozenset({"from", "to"})
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


DESCRIPTION = """Analytics computed from the event log; bots are excluded unless
`include_bots=true`. Dates take ISO-8601 or date math (`now-7d`, `now/d`), intervals `hour`,
`day`, `week`, `month` or e.g. `6h`, exactly as in /api/events/aggregate/; a series has at most
1,000 buckets. A user sees their own
analytics (`user` defaults to them), moderators their communities', staff everything;
anything else is a 403. Unknown parameters are a 400 naming the parameter; an unreachable
store is a 503. Definitions of each score are in docs/analytics.md."""


def _parameters(allowed: frozenset[str]) -> list[OpenApiParameter]:
    return [OpenApiParameter(name, OpenApiTypes.STR, description="See the description above.")
            for name in sorted(allowed | {"include_bots", "tz"})]


class AnalyticsView(StoreView, metaclass=ABCMeta):
    """One endpoint: the parameters it takes, their defaults, and what it computes. Each
    subclass documents itself in the OpenAPI schema under ``analytics_<name>``."""

    name: ClassVar[str]
    params: ClassVar[frozenset[str]]
    default_from: ClassVar[str | None] = None
    default_interval: ClassVar[str] = "day"
    default_days: ClassVar[int | None] = None

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "name" not in cls.__dict__:
            return  # a shared base such as LastMonth, not an endpoint
        extend_schema_view(get=extend_schema(
            operation_id=f"analytics_{cls.name.replace('-', '_')}",
            summary=cls.name.replace("-", " ").capitalize(), description=DESCRIPTION,
            parameters=_parameters(cls.params), responses={200: OpenApiTypes.OBJECT},
        ))(cls)

    def get(self, request: Request) -> Response:
        p = parse(request.query_params, set(self.params), default_from=self.default_from,
                  default_interval=self.default_interval, default_days=self.default_days)
        with answering():
            return Response(self.compute(self.store(), request, p))

    @abstractmethod
    def compute(self, store: Store, request: Request, p: Params) -> dict[str, Any]:
        """The endpoint's answer for the parsed parameters ``p``."""


class LastMonth(AnalyticsView):
    """Series over a period that defaults to the last 30 days."""

    default_from = "now-30d/d"


class Trending(AnalyticsView):
    name, params = "trending", frozenset({"to", "community", "days", "half_life", "size"})

    def compute(self, store: Store, request: Request, p: Params) -> dict[str, Any]:
        return compute.trending(store, p, _community(request, p, True))


class MostViewed(AnalyticsView):
    name, params = "most-viewed", PERIOD | {"community", "size"}

    def compute(self, store: Store, request: Request, p: Params) -> dict[str, Any]:
        return compute.most_viewed(store, p, community=_community(request, p))


class UserMostViewed(AnalyticsView):
    name, params = "user-most-viewed", PERIOD | {"user", "size"}

    def compute(self, store: Store, request: Request, p: Params) -> dict[str, Any]:
        return compute.most_viewed(store, p, user=_user(request, p))


class UserArticles(AnalyticsView):
    name, params = "user-articles", PERIOD | {"user"}

    def compute(self, store: Store, request: Request, p: Params) -> dict[str, Any]:
        return compute.user_articles(store, p, _user(request, p))


class ActiveUsers(LastMonth):
    name, params = "active-users", SERIES | {"community"}

    def compute(self, store: Store, request: Request, p: Params) -> dict[str, Any]:
        return compute.active_users(store, p, _community(request, p))


class EventsOverTime(LastMonth):
    name, params = "events-over-time", SERIES | {"community"}

    def compute(self, store: Store, request: Request, p: Params) -> dict[str, Any]:
        return compute.events_over_time(store, p, community=_community(request, p))


class UserEventsOverTime(LastMonth):
    name, params = "user-events-over-time", SERIES | {"user"}

    def compute(self, store: Store, request: Request, p: Params) -> dict[str, Any]:
        return compute.events_over_time(store, p, user=_user(request, p))


class TopMembers(LastMonth):
    name, params = "top-members", PERIOD | {"community", "size"}

    def compute(self, store: Store, request: Request, p: Params) -> dict[str, Any]:
        return compute.top_members(store, p, _community(request, p))


class ContentChanges(LastMonth):
    name, params = "content-changes", SERIES | {"community"}

    def compute(self, store: Store, request: Request, p: Params) -> dict[str, Any]:
        return compute.content_changes(store, p, _community(request, p))


class NewReturning(LastMonth):
    name, params = "new-returning", SERIES | {"community"}

    def compute(self, store: Store, request: Request, p: Params) -> dict[str, Any]:
        return compute.new_returning(store, p, _community(request, p))


class ReadingDepth(AnalyticsView):
    name, params = "reading-depth", PERIOD | {"community", "size"}

    def compute(self, store: Store, request: Request, p: Params) -> dict[str, Any]:
        return compute.reading_depth(store, p, _community(request, p))


class VideoCompletion(AnalyticsView):
    name, params = "video-completion", PERIOD | {"community", "size"}

    def compute(self, store: Store, request: Request, p: Params) -> dict[str, Any]:
        return compute.video_completion(store, p, _community(request, p))


# Recommendations look further back than trending: co-reading needs more than ten days of data.
class AlsoRead(AnalyticsView):
    name, params = "also-read", frozenset({"to", "article", "user", "days", "size"})
    default_days = 30

    def compute(self, store: Store, request: Request, p: Params) -> dict[str, Any]:
        return compute.also_read(store, p, _read_article(store, request, p), _user(request, p))


class CommunitiesForYou(AnalyticsView):
    name, params = "communities-for-you", frozenset({"to", "user", "days", "size"})
    default_days = 30

    def compute(self, store: Store, request: Request, p: Params) -> dict[str, Any]:
        return compute.communities_for_you(store, p, _user(request, p))


VIEWS: list[type[AnalyticsView]] = [
    Trending, MostViewed, UserMostViewed, UserArticles, ActiveUsers, EventsOverTime,
    UserEventsOverTime, TopMembers, ContentChanges, NewReturning, ReadingDepth, VideoCompletion,
    AlsoRead, CommunitiesForYou,
]
