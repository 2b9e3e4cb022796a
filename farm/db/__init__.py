"""Persistence: SQLAlchemy 2.0 models, the session factory, repository and report queries."""
