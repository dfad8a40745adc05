"""Check that the Logstash pipeline agrees with the event schema and the registry of event types,
or explain where one event goes through it (``--route``)."""
import sys
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from eventtrail import schema
from eventtrail.conf import get_config
from eventtrail.logstash import check_pipeline, pipeline_files
from eventtrail.logstash.parser import Config, ConfigError, Section, parse_file
from eventtrail.logstash.route import explain
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
        parser.add_argument(
            "--route", metavar="EVENT.json",
            help="instead of checking, explain where the events of this file (a JSON object, an "
            "array as the http input receives it, or '-' for stdin) go: the branches taken, the "
            "filters reached and the stream each ends in. Only conditions are evaluated, as "
            "Logstash 9.5's Java execution does, and mutate is simulated; other filters are "
            "named, not run, and flagged when the field they read has a type that makes them "
            "raise. Ruby semantics apply: ^ and $ match at any line end (anchor with \\A and "
            "\\z); =~ is false for anything but a string; 0, [] and {} are truthy, while "
            "false, \"\", \"false\" and a missing field are not. Exits 1 when Logstash would "
            "stop the pipeline.")
        parser.add_argument("--input", choices=("http", "tcp"), default="http",
                            help="with --route: decode the file as the http input's json codec "
                            "(default) or the tcp input's json_lines codec (one event per line)")

    def handle(self, *args: Any, **options: Any) -> None:
        path = Path(options["path"]) if options["path"] else default_pipeline()
        if not path.exists():
            raise CommandError(f"{path}: no such pipeline file or directory")
        if options["route"]:
            self.route(path, options["route"], options["input"])
            return
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

    def route(self, path: Path, source: str, input: str) -> None:
        if source == "-":
            body = sys.stdin.read()
        else:
            try:
                body = Path(source).read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError) as exc:
                raise CommandError(f"--route {source}: cannot read it ({exc})") from exc
        # Logstash joins a directory's files into one pipeline: their sections, in file order.
        sections: list[Section] = []
        for file in pipeline_files(path):
            try:
                sections.extend(parse_file(file).sections)
            except ConfigError as exc:
                raise CommandError(str(exc)) from exc
        hazards = 0
        for number, result in enumerate(explain(Config(tuple(sections), ()), body, input), 1):
            self.stdout.write(f"== event {number}")
            self.stdout.write(str(result))
            hazards += len(result.hazards)
        if hazards:
            raise CommandError(f"{hazards} place(s) where Logstash would stop the pipeline")
