"""Check that the Logstash pipeline agrees with the event schema and the registry of event types."""
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from eventtrail import schema
from eventtrail.conf import get_config
from eventtrail.logstash import check_pipeline
from eventtrail.registry import registry


def default_pipeline() -> Path:
    """EVENTTRAIL["LOGSTASH_PIPELINE_DIR"]; a relative path is taken from the working directory."""
    return Path(get_config()["LOGSTASH_PIPELINE_DIR"])


class Command(BaseCommand):
    help = (
        "Parse the Logstash pipeline with Event Trail's own LSCL parser and check it: plugins "
        "bundled with Logstash 9.5, their options, fields in the event schema, and every "
        "registered event type handled."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("path", nargs="?", help="a pipeline file or directory "
                            "(default: EVENTTRAIL['LOGSTASH_PIPELINE_DIR'])")

    def handle(self, *args: Any, **options: Any) -> None:
        path = Path(options["path"]) if options["path"] else default_pipeline()
        if not path.exists():
            raise CommandError(f"{path}: no such pipeline file or directory")
        problems = check_pipeline(path, fields=set(schema.BY_NAME), actions=registry.actions())
        for problem in problems:
            self.stdout.write(str(problem))
        errors = [p for p in problems if p.level == "error"]
        if errors:
            raise CommandError(f"{len(errors)} problem(s) in {path}")
        warnings = len(problems) - len(errors)
        self.stdout.write(self.style.SUCCESS(
            f"{path}: OK ({len(registry.actions())} event types handled"
            + (f", {warnings} warning(s))" if warnings else ")")))
