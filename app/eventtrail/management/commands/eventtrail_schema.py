"""Export the event schema as JSON, or render the index template's mappings from it."""
import json
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from eventtrail import schema
from eventtrail.conf import get_config


class Command(BaseCommand):
    help = "Print the event schema as JSON; --template prints the Elasticsearch index template."

    def add_arguments(self, parser: CommandParser) -> None:
        what = parser.add_mutually_exclusive_group()
        what.add_argument("--template", action="store_true", help="the composable index template")
        what.add_argument("--mappings", action="store_true", help="only the mappings")
        what.add_argument("--types", action="store_true",
                          help="each field's mapping type, for the pipeline's type gate "
                          "(logstash/scripts/fields.json)")
        parser.add_argument("--data-stream", help="defaults to EVENTTRAIL['DATA_STREAM']")
        parser.add_argument("--output", "-o", help="write to this file instead of stdout")

    def handle(self, *args: Any, **options: Any) -> None:
        if options["template"]:
            data = schema.index_template(options["data_stream"] or get_config()["DATA_STREAM"])
        elif options["mappings"]:
            data = schema.mappings()
        elif options["types"]:
            data = schema.field_types()
        else:
            data = schema.export()
        text = json.dumps(data, indent=2, sort_keys=False) + "\n"
        if options["output"]:
            with open(options["output"], "w") as fh:
                fh.write(text)
        else:
            self.stdout.write(text, ending="")
