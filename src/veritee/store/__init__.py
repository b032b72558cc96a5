"""Persistence: SQLAlchemy models and Alembic migrations. The only code that holds database sessions."""
