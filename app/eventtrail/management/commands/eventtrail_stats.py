"""Print delivery counters summed over every worker process, and what waits in the spools."""
import json
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from eventtrail.conf import get_config
from eventtrail.delivery.spool import spooled_on_disk
from eventtrail.stats import aggregate


class Command(BaseCommand):
    help = "Show Event Trail's delivery counters (all processes) and the spool backlog."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--json", action="store_true", help="machine-readable output")

    def handle(self, *args: Any, **options: Any) -> None:
        directory = get_config()["SPOOL_DIR"]
        totals = aggregate(directory, spooled_on_disk(directory))
        if options["json"]:
            self.stdout.write(json.dumps(totals, indent=2))
            return
        self.stdout.write(f"sink: {get_config()['SINK']}    spool: {directory}")
        for name in ("enqueued", "adopted", "spooled", "delivered", "retried", "send_errors", "spool_errors",
                     "internal_error", "in_spool"):
            self.stdout.write(f"  {name:<24} {totals.get(name, 0):>12,}")
        for reason, count in sorted(totals["dropped"].items()):
            self.stdout.write(f"  {'dropped.' + reason:<24} {count:>12,}")
        for name, count in sorted(totals["collect"].items()):
            self.stdout.write(f"  {'collect.' + name:<24} {count:>12,}")
        alive = sum(1 for p in totals["processes"] if p["alive"])
        self.stdout.write(f"  {'processes':<24} {alive} alive, {len(totals['processes'])} seen")
        if totals["last_error"]:
            self.stdout.write(f"  {'last error':<24} {totals['last_error']}")
