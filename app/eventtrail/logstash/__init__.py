"""Static checks of a Logstash pipeline: an LSCL parser, a Logstash 9.5 plugin table, a checker."""
