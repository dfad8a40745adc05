"""Static checks of a Logstash pipeline: an LSCL parser, a Logstash 9.5 plugin table, a checker."""
from .check import PIPELINE_FIELDS, Problem, check_pipeline, pipeline_files
from .parser import Config, ConfigError, parse, parse_file
from .plugins import PluginTable, table

__all__ = [
    "PIPELINE_FIELDS",
    "Config",
    "ConfigError",
    "PluginTable",
    "Problem",
    "check_pipeline",
    "parse",
    "parse_file",
    "pipeline_files",
    "table",
]
