"""The embedded store: one row per event, indexed columns plus the whole document as JSON."""
from __future__ import annotations

import math
from typing import Any

from django.db import models

# Schema field -> column, for the fields the API filters, sorts and groups on.
COLUMNS: dict[str, str] = {
    "@timestamp": "timestamp",
    "event.id": "id",
    "event.action": "action",
    "event.outcome": "outcome",
    "event.duration": "duration",
    "event.ingested": "ingested",
    "user.id": "user_id",
    "user.name": "user_name",
    "source.ip": "source_ip",
    "url.path": "url_path",
    "http.request.method": "method",
    "http.response.status_code": "status_code",
    "user_agent.name": "ua_name",
    "user_agent.os.name": "os_name",
    "service.name": "service_name",
    "eventtrail.source": "source",
    "eventtrail.session.hash": "session_hash",
    "eventtrail.community.id": "community_id",
    "eventtrail.community.slug": "community_slug",
    "eventtrail.target.type": "target_type",
    "eventtrail.target.id": "target_id",
    "eventtrail.target.state": "target_state",
    "eventtrail.target.previous_state": "target_previous_state",
    "eventtrail.bot": "is_bot",
    # Engagement: reading depth and video completion group on these, from the target rollup.
    "eventtrail.browser.scroll_depth": "scroll_depth",
    "eventtrail.video.id": "video_id",
    "eventtrail.video.progress": "video_progress",
}
# Number columns and the bound of their SQL type (bigint, integer).
INTEGER_COLUMNS = {"duration": 2**63, "status_code": 2**31, "scroll_depth": 2**31,
                   "video_progress": 2**31}


def _whole(value: Any, bound: int) -> int | None:
    """A number column's value as Elasticsearch's ``long`` coerces it (200, 200.7, "200" ->
    200); None for what it would refuse (a boolean, text, infinity) or the column cannot hold
    (beyond +/- ``bound``), so one odd event never fails a batch's insert."""
    if isinstance(value, bool):
        return None
    if not isinstance(value, int):
        try:
            number = float(value)
        except (TypeError, ValueError):
            return None
        if not math.isfinite(number):
            return None
        value = int(number)
    return value if -bound <= value < bound else None


class StoredEvent(models.Model):
    """An event as the embedded store keeps it. The primary key is ``event.id``."""

    id = models.CharField(max_length=36, primary_key=True)
    timestamp = models.DateTimeField()
    action = models.CharField(max_length=64)
    outcome = models.CharField(max_length=16, blank=True, default="")
    duration = models.BigIntegerField(null=True)
    ingested = models.DateTimeField(null=True)
    user_id = models.CharField(max_length=64, null=True)
    user_name = models.CharField(max_length=150, null=True)
    source_ip = models.GenericIPAddressField(null=True)
    url_path = models.TextField(null=True)
    method = models.CharField(max_length=16, null=True)
    status_code = models.IntegerField(null=True)
    ua_name = models.CharField(max_length=128, null=True)
    os_name = models.CharField(max_length=128, null=True)
    service_name = models.CharField(max_length=128, null=True)
    source = models.CharField(max_length=16, null=True)
    session_hash = models.CharField(max_length=64, null=True)
    community_id = models.CharField(max_length=64, null=True)
    community_slug = models.CharField(max_length=128, null=True)
    target_type = models.CharField(max_length=64, null=True)
    target_id = models.CharField(max_length=64, null=True)
    target_state = models.CharField(max_length=32, null=True)
    target_previous_state = models.CharField(max_length=32, null=True)
    is_bot = models.BooleanField(default=False)
    scroll_depth = models.IntegerField(null=True)
    video_id = models.CharField(max_length=128, null=True)
    video_progress = models.IntegerField(null=True)
    document = models.JSONField()

    class Meta:
        permissions = [("view_all_events", "Can read every event through the API")]
        indexes = [
            # Time order for listings, and every column a chart of raw events reads (buckets
            # under a quarter hour): such a chart reads the index alone, along the period,
            # instead of visiting each row (about three times faster on SQLite at a million).
            models.Index(fields=["timestamp", "id", "action", "is_bot", "user_id",
                                 "community_slug"], name="et_ts_covering"),
            models.Index(fields=["action", "timestamp"], name="et_action_ts"),
            models.Index(fields=["user_id", "timestamp"], name="et_user_ts"),
            models.Index(fields=["community_slug", "timestamp"], name="et_community_ts"),
            models.Index(fields=["target_type", "target_id", "timestamp"], name="et_target_ts"),
            models.Index(fields=["ingested"], name="et_ingested"),
            # Covering indexes for group_by on action and on community x action: the bot
            # filter and COUNT(id) every such query carries are answered from the index alone.
            models.Index(
                fields=["action", "community_slug", "is_bot", "id"], name="et_action_community"
            ),
            models.Index(
                fields=["community_slug", "action", "is_bot", "id"], name="et_community_action"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.timestamp:%Y-%m-%d %H:%M:%S} {self.action} {self.user_name or '-'}"

    @classmethod
    def from_flat(cls, flat: dict[str, Any], document: dict[str, Any]) -> StoredEvent:
        from django.utils.dateparse import parse_datetime

        values: dict[str, Any] = {}
        for name, column in COLUMNS.items():
            value = flat.get(name)
            if value is None:
                continue
            if column in {"timestamp", "ingested"}:
                value = parse_datetime(value.replace("Z", "+00:00"))
            elif column in INTEGER_COLUMNS:
                value = _whole(value, INTEGER_COLUMNS[column])
                if value is None:
                    continue  # not a number: the document keeps it, the column stays empty
            elif column in TEXT_LIMITS and (isinstance(value, bool | dict | list)
                                            or len(str(value)) > TEXT_LIMITS[column]):
                continue  # not a scalar, or longer than the column holds (PostgreSQL would
                # refuse the batch): the document keeps it
            elif column in TEXT_LIMITS:
                value = str(value)
            values[column] = value
        return cls(document=document, **values)


# Text columns an event may leave empty, and their length: a longer value stays in the document.
TEXT_LIMITS: dict[str, int] = {
    f.name: f.max_length for f in StoredEvent._meta.concrete_fields
    if isinstance(f, models.CharField) and f.max_length and f.name not in {"id", "action"}}


class DailyRollup(models.Model):
    """Events counted per UTC day and grain; exact: built from ``StoredEvent``, then kept by the
    database sink (eventtrail.stores.database). The columns share StoredEvent's names so filters apply to both."""

    day = models.DateField()
    action = models.CharField(max_length=64)
    community_slug = models.CharField(max_length=128, null=True)
    target_type = models.CharField(max_length=64, null=True)
    user_id = models.CharField(max_length=64, null=True)
    is_bot = models.BooleanField(default=False)
    # The HTTP status of request events (NULL for the others): a view counts as a read only
    # when it succeeded, and the rollups must answer that exactly.
    status_code = models.IntegerField(null=True)
    # The grain's columns as one text (stores.database.grain_key), unique with the day: the
    # key the sink's upsert increments on, NULL kept apart from '' and 0.
    grain = models.TextField()
    events = models.BigIntegerField()

    class Meta:
        abstract = True

    def __str__(self) -> str:
        return f"{self.day} {self.action} {self.user_id or '-'}: {self.events}"


class UserRollup(DailyRollup):
    """Grain: day, action, community, target type, user (and a name it carried), bot flag,
    HTTP status."""

    user_name = models.CharField(max_length=150, null=True)

    class Meta:
        indexes = [
            models.Index(fields=["day"], name="et_ur_day"),
            models.Index(fields=["community_slug", "day"], name="et_ur_community"),
            models.Index(fields=["user_id", "day"], name="et_ur_user"),
        ]
        constraints = [models.UniqueConstraint(fields=["day", "grain"], name="et_ur_grain")]


class TargetRollup(DailyRollup):
    """Grain: day, action, community, target, user, bot flag, HTTP status, and the engagement
    columns (scroll depth, video, video progress): views per article and reader, how far they
    read and watched."""

    target_id = models.CharField(max_length=64, null=True)
    scroll_depth = models.IntegerField(null=True)
    video_id = models.CharField(max_length=128, null=True)
    video_progress = models.IntegerField(null=True)

    class Meta:
        indexes = [
            models.Index(fields=["day"], name="et_tr_day"),
            models.Index(fields=["user_id", "day"], name="et_tr_user"),
            # Every analytic on this rollup names its action (views, scrolls, plays): this
            # index holds every column they read, so they never visit the table's rows (which
            # the sink writes in arrival order, every action interleaved: 154 ms for a month's
            # views by row lookups against 38 from the index alone, at a million events).
            models.Index(fields=["action", "day", "target_id", "user_id", "community_slug",
                                 "target_type", "status_code", "is_bot", "scroll_depth",
                                 "video_id", "video_progress", "events"],
                         name="et_tr_action_covering"),
            # The same columns for questions about given articles (their views, readers and
            # reading depth): rows by the user make a month's scroll rows 240,000 at a million
            # events, of which the page's ten articles hold 34,000.
            models.Index(fields=["target_id", "action", "day", "user_id", "community_slug",
                                 "target_type", "status_code", "is_bot", "scroll_depth",
                                 "video_id", "video_progress", "events"],
                         name="et_tr_target_covering"),
            # And for a community's: without its action and the columns, SQLite (no ANALYZE)
            # chose an index on the community and day and looked up each row in the table,
            # 38 to 63 ms a question against 12 to 20 through the two above.
            models.Index(fields=["community_slug", "action", "day", "target_id", "user_id",
                                 "target_type", "status_code", "is_bot", "scroll_depth",
                                 "video_id", "video_progress", "events"],
                         name="et_tr_community_covering"),
        ]
        constraints = [models.UniqueConstraint(fields=["day", "grain"], name="et_tr_grain")]


class UnitRollup(models.Model):
    """Events counted per UTC quarter hour (or five minutes) and grain: charts in any time zone
    and by any bucket of whole quarter hours (every zone's offset today is a multiple of 15
    minutes: India +5:30, Nepal +5:45, Chatham +12:45, so no bucket starts inside a quarter
    hour; the quarter hours a bucket does start inside, a 50m one or an old offset's day, are
    read from the five-minute rollups, and the five minutes a bucket starts inside from the
    events table). Kept as the daily ones are."""

    start = models.DateTimeField()
    community_slug = models.CharField(max_length=128, null=True)
    is_bot = models.BooleanField(default=False)
    grain = models.TextField()  # as DailyRollup.grain, unique with the start
    events = models.BigIntegerField()

    class Meta:
        abstract = True

    def __str__(self) -> str:
        return f"{self.start:%Y-%m-%d %H:%M} {self.grain}: {self.events}"


class ActionColumns(UnitRollup):
    """Grain: the time unit, action, community, target type, the state a target entered, HTTP
    status, bot flag: events over time by action or state (no user)."""

    action = models.CharField(max_length=64)
    target_type = models.CharField(max_length=64, null=True)
    target_state = models.CharField(max_length=32, null=True)
    status_code = models.IntegerField(null=True)

    class Meta:
        abstract = True


class UserColumns(UnitRollup):
    """Grain: the time unit, user, community, bot flag: who was active when."""

    user_id = models.CharField(max_length=64, null=True)

    class Meta:
        abstract = True


class QuarterHourActionRollup(ActionColumns):
    """Events per UTC quarter hour and action (``ActionColumns``)."""

    class Meta:
        # Each index holds every column a chart reads, so a period's rows are read from the
        # index alone (the sink writes rows in arrival order: row lookups cost more than a
        # scan, as on the daily target rollup).
        indexes = [models.Index(fields=["start", "action", "community_slug", "target_type",
                                        "target_state", "status_code", "is_bot", "events"],
                                name="et_qa_start"),
                   models.Index(fields=["community_slug", "start", "action", "target_type",
                                        "target_state", "status_code", "is_bot", "events"],
                                name="et_qa_community")]
        constraints = [models.UniqueConstraint(fields=["start", "grain"], name="et_qa_grain")]


class QuarterHourUserRollup(UserColumns):
    """Users active per UTC quarter hour (``UserColumns``)."""

    class Meta:
        indexes = [models.Index(fields=["start", "user_id", "community_slug", "is_bot"],
                                name="et_qu_start"),
                   models.Index(fields=["community_slug", "start", "user_id", "is_bot"],
                                name="et_qu_community"),
                   # Each user's first quarter hour without visiting rows.
                   models.Index(fields=["user_id", "start", "community_slug", "is_bot"],
                                name="et_qu_user")]
        constraints = [models.UniqueConstraint(fields=["start", "grain"], name="et_qu_grain")]


class QuarterHourVisitorRollup(UserColumns):
    """Users active per UTC quarter hour across the site (grain: user, bot flag; no community,
    which stays NULL): a third of the rows of ``QuarterHourUserRollup`` on the demo's data, for
    the site-wide active users, first events and rolling user counts."""

    class Meta:
        indexes = [models.Index(fields=["start", "user_id", "is_bot"], name="et_qv_start"),
                   models.Index(fields=["user_id", "start", "is_bot"], name="et_qv_user")]
        constraints = [models.UniqueConstraint(fields=["start", "grain"], name="et_qv_grain")]


class FiveMinuteActionRollup(ActionColumns):
    """Events per UTC five minutes and action: the quarter hours a bucket starts inside (a 50m
    or 20m bucket, a 5m one), read a third of a quarter hour at a time rather than event by
    event. Kept as the quarter-hour ones are."""

    class Meta:
        indexes = [models.Index(fields=["start", "action", "community_slug", "target_type",
                                        "target_state", "status_code", "is_bot", "events"],
                                name="et_fa_start"),
                   models.Index(fields=["community_slug", "start", "action", "target_type",
                                        "target_state", "status_code", "is_bot", "events"],
                                name="et_fa_community")]
        constraints = [models.UniqueConstraint(fields=["start", "grain"], name="et_fa_grain")]


class FiveMinuteUserRollup(UserColumns):
    """Users active per UTC five minutes, as ``FiveMinuteActionRollup``."""

    class Meta:
        indexes = [models.Index(fields=["start", "user_id", "community_slug", "is_bot"],
                                name="et_fu_start"),
                   models.Index(fields=["community_slug", "start", "user_id", "is_bot"],
                                name="et_fu_community")]
        constraints = [models.UniqueConstraint(fields=["start", "grain"], name="et_fu_grain")]


class FiveMinuteVisitorRollup(UserColumns):
    """Users active per UTC five minutes across the site, as ``QuarterHourVisitorRollup``."""

    class Meta:
        indexes = [models.Index(fields=["start", "user_id", "is_bot"], name="et_fv_start")]
        constraints = [models.UniqueConstraint(fields=["start", "grain"], name="et_fv_grain")]


class RollupState(models.Model):
    """Whether the rollups are built: ``checked_to`` is when, NULL until then. Once built, the
    database sink adds each batch to them; ``reset_rollups`` deletes this row to rebuild."""

    name = models.CharField(max_length=32, primary_key=True)
    checked_to = models.DateTimeField(null=True)

    def __str__(self) -> str:
        return f"{self.name} rollups checked to {self.checked_to}"


# The embedded store's tables: the events and the rollups the database sink keeps beside them.
STORE_MODELS: tuple[type[models.Model], ...] = (StoredEvent, UserRollup, TargetRollup,
                                                QuarterHourActionRollup, QuarterHourUserRollup,
                                                QuarterHourVisitorRollup,
                                                FiveMinuteActionRollup, FiveMinuteUserRollup,
                                                FiveMinuteVisitorRollup,
                                                RollupState)
