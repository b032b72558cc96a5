"""``veritee deploy TC --to SELECTOR`` and ``veritee undeploy``: the TAM's deployment policy, through its admin API
(options as for ``veritee tc``).

Two top-level commands, not a group. Register them in ``veritee.cli.main`` with::

    app.command("deploy")(deploy.deploy)
    app.command("undeploy")(deploy.undeploy)

(``deploy_app`` and ``undeploy_app`` are the same commands as single-command Typer apps, for tests and embedding.)

Selectors: ``all``; ``attr:KEY=VALUE[,KEY=VALUE...]`` (device attributes, see ``veritee device set``);
``device:REF[,REF...]`` (device ids or key thumbprints). A deployment sends the newest catalog version of the TC to
matching devices that lack it or have an older one; deleting it makes the TAM remove the TC from devices no other
deployment targets.
"""

from __future__ import annotations

from pathlib import Path

import typer

from veritee.cli.tc import CA_OPT, JSON_OPT, TAM_OPT, TOKEN_OPT, admin_client, emit, fail
from veritee.errors import NotFoundError
from veritee.service.tam_ids import canonical_component_id
from veritee.service.tam_policy import Selector

__all__ = ["deploy", "deploy_app", "undeploy", "undeploy_app"]


def deploy(
    tc: str = typer.Argument(..., help="Component id, e.g. TEEP-Device/SecureFS/<uuid>/ta (see 'veritee tc list')."),
    to: str = typer.Option(..., "--to", help="Selector: all | attr:KEY=VALUE[,...] | device:ID[,...]"),
    min_sequence: int | None = typer.Option(None, "--min-sequence", help="Refuse to deploy versions below this."),
    tam: str = TAM_OPT,
    token: str = TOKEN_OPT,
    ca: Path | None = CA_OPT,
    as_json: bool = JSON_OPT,
) -> None:
    """Deploy a Trusted Component to the devices a selector matches (through a running TAM's admin API)."""
    with admin_client(tam, token, ca, as_json) as client:
        result = client.add_deployment(tc, to, min_sequence)
    emit(result, as_json, lambda r: f"deployment {r['id']}: {r['component_id']} -> {r['selector']}")


def undeploy(
    tc: str | None = typer.Argument(None, help="Component id whose deployments to delete."),
    from_: str | None = typer.Option(None, "--from", help="Only the deployment with this selector."),
    deployment_id: int | None = typer.Option(None, "--id", help="Delete this deployment id instead."),
    tam: str = TAM_OPT,
    token: str = TOKEN_OPT,
    ca: Path | None = CA_OPT,
    as_json: bool = JSON_OPT,
) -> None:
    """Delete deployments (of a component, optionally only one selector's, or one by id) through the TAM's admin
    API; the TAM then removes the component from devices no other deployment targets."""
    if (tc is None) == (deployment_id is None):
        raise fail("give a component id or --id (exactly one)", as_json)
    with admin_client(tam, token, ca, as_json) as client:
        if deployment_id is not None:
            ids = [deployment_id]
        else:
            assert tc is not None
            component = canonical_component_id(tc)
            wanted = Selector.parse(from_).text() if from_ is not None else None
            ids = [d["id"] for d in client.list_deployments(component) if wanted is None or d["selector"] == wanted]
            if not ids:
                raise NotFoundError(f"no deployment of {component}" + (f" to {wanted}" if wanted else ""))
        for item in ids:
            client.delete_deployment(item)
    emit({"ok": True, "deleted": ids}, as_json, lambda r: "deleted deployment(s) " + ", ".join(map(str, r["deleted"])))


deploy_app = typer.Typer(help=deploy.__doc__)
deploy_app.command("deploy")(deploy)
undeploy_app = typer.Typer(help=undeploy.__doc__)
undeploy_app.command("undeploy")(undeploy)
