"""Typer command-line interface (``veritee``)."""
