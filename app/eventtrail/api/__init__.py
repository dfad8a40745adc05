"""The query REST API: field registry, query model, views."""
