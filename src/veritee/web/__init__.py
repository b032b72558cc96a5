"""FastAPI applications; errors are mapped to HTTP in one place (web.errors)."""
