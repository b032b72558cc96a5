"""``veritee demo``: runs what the project can do, on its embedded defaults (SQLite + swtpm)."""

from __future__ import annotations

import shutil

import typer

from veritee import __version__

NAME = "demo"
app = typer.Typer(help="Run the end-to-end demonstration on the embedded defaults.", invoke_without_command=True)


@app.callback()
def run() -> None:
    """Run the demonstration steps that are available and print what each computed."""
    typer.echo(f"veritee {__version__} demo")
    swtpm = shutil.which("swtpm")
    typer.echo(f"swtpm: {swtpm or 'not installed'}")
