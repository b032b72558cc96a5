"""``veritee demo``: runs what the project can do, on its embedded defaults (SQLite + swtpm), on loopback only."""

from __future__ import annotations

import tempfile
from pathlib import Path

import typer

from veritee import __version__

NAME = "demo"
app = typer.Typer(help="Run the end-to-end demonstration on the embedded defaults.", invoke_without_command=True)


@app.callback()
def run(
    workdir: Path | None = typer.Option(None, help="Keep the demo's databases, TEEs and TPM state here."),
) -> None:
    """Platform integrity on swtpm-backed nodes, then TEEP installs through a TAM; prints what each step computed."""
    from veritee.cli import demo_platform, demo_teep

    typer.echo(f"veritee {__version__} demo")
    with tempfile.TemporaryDirectory(prefix="veritee-demo-") as tmp:
        root = workdir or Path(tmp)
        typer.echo("\n== Platform integrity: verifier + swtpm-backed nodes ==")
        platform_ok = demo_platform.run(root / "platform", typer.echo)
        typer.echo("\n== TEEP: a TAM installs, updates and removes a Trusted Component ==")
        teep_ok = demo_teep.run(root / "teep", typer.echo)
    typer.echo(f"\nplatform integrity: {'as expected' if platform_ok else 'UNEXPECTED RESULT'}; "
               f"TEEP: {'as expected' if teep_ok else 'UNEXPECTED RESULT'}")  # fmt: skip
    if not (platform_ok and teep_ok):
        raise typer.Exit(1)
