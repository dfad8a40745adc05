"""Shared fixtures for the whole suite."""

pytest_plugins = ["tests.engine_fixture"]
