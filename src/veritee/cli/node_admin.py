"""Learning a policy from a known-good node in the verifier database, for the command line.

:func:`create_policy_from_node` is what ``veritee policy create --from-node NODE --db URL`` runs (attached to the
``policy`` group in cli/policy.py); ``veritee verifier policy-from NODE`` runs it too.
"""

from __future__ import annotations

import json
from pathlib import Path

import typer

from veritee.appraisal.policy import dump_policy
from veritee.errors import ValidationError, VeriteeError
from veritee.service.verifier_admin import learn_policy
from veritee.service.verifier_policies import put_policy
from veritee.store.db import Database, DatabaseConfig

__all__ = ["UnusableOutputError", "create_policy_from_node"]


class UnusableOutputError(ValidationError):
    """The policy file cannot be written."""


def create_policy_from_node(
    node_id: str,
    db_url: str,
    out: Path | None,
    *,
    name: str = "",
    excludes: list[str] | None = None,
    install: bool = False,
    json_output: bool = False,
) -> None:
    """Learn the boot and runtime policy a known-good node's kept evidence satisfies; write it to ``out`` and/or
    store it in the verifier database (``install``). Exit code 2 with the error on failure."""
    try:
        database = Database(DatabaseConfig(url=db_url))
        policy = learn_policy(database, node_id, name=name or node_id, excludes=excludes or [])
        result: dict[str, object] = {"name": policy.name, "from_node": node_id}
        if out is not None:
            try:
                out.write_text(dump_policy(policy))
            except OSError as exc:
                raise UnusableOutputError(f"cannot write {out}: {exc.strerror or exc}") from None
            result["written"] = str(out)
        if install:
            ref = put_policy(database, policy)
            result.update({"version": ref.version, "policy_id": ref.policy_id})
        if policy.runtime is not None:
            result["runtime_paths"] = len(policy.runtime.digests)
        result["boot"] = policy.boot is not None
    except VeriteeError as exc:
        if json_output:
            typer.echo(json.dumps({"error": {"type": type(exc).__name__, "message": str(exc)}}))
        else:
            typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    if json_output:
        typer.echo(json.dumps(result))
    else:
        typer.echo(f"policy {policy.name} learned from {node_id}: " + ", ".join(f"{k}={v}" for k, v in result.items()))
