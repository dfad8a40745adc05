"""Operator views: delivery counters as JSON, for staff."""
from django.contrib.admin.views.decorators import staff_member_required
from django.http import HttpRequest, JsonResponse

from eventtrail.conf import get_config
from eventtrail.delivery.spool import spooled_on_disk
from eventtrail.stats import aggregate


@staff_member_required
def delivery_stats(request: HttpRequest) -> JsonResponse:
    """Counters summed over all worker processes (each writes its own file every second)."""
    directory = get_config()["SPOOL_DIR"]
    totals = aggregate(directory, spooled_on_disk(directory))
    totals["sink"] = get_config()["SINK"]
    return JsonResponse(totals)
