"""Harnesses and builders the tests share (imported by tests, never by conftest's users)."""
