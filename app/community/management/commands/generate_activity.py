"""manage.py generate_activity: deterministic, back-dated demo activity through the configured sink."""

import time
from datetime import datetime

from django.core.management.base import BaseCommand, CommandError
from eventtrail.build import prepare
from eventtrail.delivery import make_sink
from eventtrail.delivery.sinks import DeliveryError

from community.activity import Generator, default_until, load_site


class Command(BaseCommand):
    help = "Write a realistic, deterministic history of site activity through the event sink."

    def add_arguments(self, parser):
        parser.add_argument("--days", type=int, default=30)
        parser.add_argument("--events", type=int, default=200_000)
        parser.add_argument("--seed", type=int, default=1)
        parser.add_argument("--until", help="ISO-8601 end of the history (default: today 00:00 UTC)")
        parser.add_argument("--sink", help="override EVENTTRAIL['SINK'] for this run")
        parser.add_argument("--batch", type=int, default=2000)
        parser.add_argument("--if-empty", action="store_true",
                            help="do nothing when the embedded store already holds events")

    def handle(self, *args, **options):
        import random

        if options["days"] < 1 or options["events"] < 1:
            raise CommandError("--days and --events must be positive")
        if options["if_empty"]:
            from eventtrail.models import StoredEvent

            count = StoredEvent.objects.count()
            if count:
                self.stdout.write(f"The event store already holds {count} events; skipping.")
                return
        until = datetime.fromisoformat(options["until"]) if options["until"] else default_until()
        site = load_site(random.Random(options["seed"]))
        if not site.people or not site.articles:
            raise CommandError("No demo data: run `manage.py seed_demo` first.")
        generator = Generator(site, days=options["days"], events=options["events"],
                              seed=options["seed"], until=until)
        sink = make_sink(options["sink"])
        started, sent, batch = time.monotonic(), 0, []
        for draft in generator.drafts():
            prepared = prepare(draft)
            if prepared is not None:
                batch.append(prepared[1])
            if len(batch) >= options["batch"]:
                sent += self._send(sink, batch)
                batch = []
        if batch:
            sent += self._send(sink, batch)
        sink.close()
        elapsed = time.monotonic() - started
        self.stdout.write(self.style.SUCCESS(
            f"Generated {sent} events over {options['days']} days up to {until:%Y-%m-%d} "
            f"into {sink.name} in {elapsed:.1f}s ({sent / max(elapsed, 1e-9):,.0f} events/s)."))

    def _send(self, sink, batch, attempts=8):
        for attempt in range(attempts):
            try:
                sink.send(batch)
                return len(batch)
            except DeliveryError as exc:
                if exc.delivered:
                    batch = batch[exc.delivered:]
                self.stderr.write(f"{sink.name}: {exc}; retrying")
                time.sleep(min(2 ** attempt, 30))
        raise CommandError(f"{sink.name} kept failing; stopped after {attempts} attempts")
