"""The verifier's operator API: nodes, history, quarantine/release/revoke, policies, groups, learning a policy.

Reads are open (they show no secrets); changes need ``Authorization: Bearer <admin token>`` (the verifier's
``admin_token``; without one configured, changes are refused).
"""

from __future__ import annotations

import hmac
from typing import Any

from fastapi import FastAPI, Query, Request, Response
from starlette.concurrency import run_in_threadpool

from veritee.appraisal.node_state import NodeState
from veritee.appraisal.policy import PolicySet, export_policy, parse_policy
from veritee.errors import AuthError, ValidationError
from veritee.service.verifier_history import verify_node_history
from veritee.service.verifier_policies import delete_policy, get_policy, list_policies, put_group, put_policy
from veritee.service.verifier_service import VerifierService
from veritee.web.verifier_body import optional_json

__all__ = ["add_admin_routes", "check_admin"]


def check_admin(request: Request, service: VerifierService) -> None:
    token = service.config.admin_token
    if not token:
        raise AuthError("the operator API is disabled: no admin token is configured")
    header = request.headers.get("authorization", "")
    scheme, _, given = header.partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(), token.encode()):
        raise AuthError("a valid admin bearer token is required")


def _reason(body: Any) -> str:
    if body is None:
        return "operator"
    if not isinstance(body, dict) or not isinstance(body.get("reason", "operator"), str):
        raise ValidationError("the body must be {'reason': str} or empty")
    return str(body.get("reason", "operator"))[:500]


def add_admin_routes(app: FastAPI, service: VerifierService) -> None:
    admin = service.admin

    @app.get("/v1/nodes")
    async def nodes(
        state: NodeState | None = Query(None), limit: int = Query(1000, ge=1), after: str | None = Query(None)
    ) -> dict[str, Any]:
        return {"nodes": await run_in_threadpool(lambda: admin.nodes(state=state, limit=limit, after=after))}

    @app.get("/v1/nodes/{node_id}")
    async def node(node_id: str) -> dict[str, Any]:
        return await run_in_threadpool(admin.node, node_id)

    @app.get("/v1/nodes/{node_id}/history")
    async def history(node_id: str, limit: int = Query(100, ge=1), before: int | None = Query(None)) -> dict[str, Any]:
        records = await run_in_threadpool(lambda: admin.history(node_id, limit=limit, before=before))
        return {"node_id": node_id, "records": records}

    @app.get("/v1/nodes/{node_id}/history/verify")
    async def history_verify(node_id: str) -> dict[str, Any]:
        report = await run_in_threadpool(verify_node_history, service.db, node_id)
        return {"node_id": node_id, "intact": True, "records": report.records, "head": report.head}

    @app.patch("/v1/nodes/{node_id}")
    async def assign(node_id: str, request: Request) -> dict[str, Any]:
        check_admin(request, service)
        body = await optional_json(request)
        if not isinstance(body, dict) or not set(body) <= {"group", "policy", "interval_s"}:
            raise ValidationError("the body must be an object with some of group, policy, interval_s")
        for name in ("group", "policy"):
            if body.get(name) is not None and not isinstance(body[name], str):
                raise ValidationError(f"{name} must be a string or null")
        interval = body.get("interval_s")
        if interval is not None and (isinstance(interval, bool) or not isinstance(interval, int | float)):
            raise ValidationError("interval_s must be a number or null")
        result = await run_in_threadpool(
            lambda: admin.assign(
                node_id,
                group=body.get("group"),
                policy=body.get("policy"),
                interval_s=None if interval is None else float(interval),
                fields=body.keys(),
            )
        )
        service.policies.invalidate()
        return result

    @app.post("/v1/nodes/{node_id}/quarantine")
    async def quarantine(node_id: str, request: Request) -> dict[str, Any]:
        check_admin(request, service)
        reason = _reason(await optional_json(request))
        state = await run_in_threadpool(admin.quarantine, node_id, reason)
        service.wake()
        return {"node_id": node_id, "state": state.value}

    @app.post("/v1/nodes/{node_id}/release")
    async def release(node_id: str, request: Request) -> dict[str, Any]:
        check_admin(request, service)
        reason = _reason(await optional_json(request))
        state = await run_in_threadpool(admin.release, node_id, reason)
        service.wake()
        return {"node_id": node_id, "state": state.value}

    @app.post("/v1/nodes/{node_id}/revoke")
    async def revoke(node_id: str, request: Request) -> dict[str, Any]:
        check_admin(request, service)
        reason = _reason(await optional_json(request))
        await run_in_threadpool(admin.revoke, node_id, reason)
        service.wake()
        return {"node_id": node_id, "ak_revoked": True}

    @app.delete("/v1/nodes/{node_id}", status_code=204)
    async def delete_node(node_id: str, request: Request) -> Response:
        check_admin(request, service)
        await run_in_threadpool(admin.delete, node_id)
        return Response(status_code=204)

    @app.get("/v1/policies")
    async def policies() -> dict[str, Any]:
        refs = await run_in_threadpool(list_policies, service.db)
        return {"policies": [{"name": r.name, "version": r.version, "policy_id": r.policy_id} for r in refs]}

    @app.get("/v1/policies/{name}")
    async def policy(name: str) -> dict[str, Any]:
        ref, document = await run_in_threadpool(get_policy, service.db, name)
        return {
            "name": ref.name,
            "version": ref.version,
            "policy_id": ref.policy_id,
            "document": export_policy(document.boot, document.runtime, name=document.name),
        }

    @app.put("/v1/policies/{name}")
    async def store_policy(name: str, request: Request) -> dict[str, Any]:
        check_admin(request, service)
        parsed = parse_policy(await optional_json(request))
        ref = await run_in_threadpool(put_policy, service.db, PolicySet(name, parsed.boot, parsed.runtime))
        service.policies.invalidate()
        return {"name": ref.name, "version": ref.version, "policy_id": ref.policy_id}

    @app.delete("/v1/policies/{name}", status_code=204)
    async def remove_policy(name: str, request: Request) -> Response:
        check_admin(request, service)
        await run_in_threadpool(delete_policy, service.db, name)
        service.policies.invalidate()
        return Response(status_code=204)

    @app.post("/v1/policies/{name}/from-node/{node_id}")
    async def learn_policy(name: str, node_id: str, request: Request, exclude: list[str] = Query([])) -> dict[str, Any]:
        check_admin(request, service)
        learned = await run_in_threadpool(lambda: admin.policy_from_node(node_id, name=name, excludes=exclude))
        ref = await run_in_threadpool(put_policy, service.db, learned)
        service.policies.invalidate()
        return {"name": ref.name, "version": ref.version, "policy_id": ref.policy_id, "from_node": node_id}

    @app.put("/v1/groups/{name}")
    async def group(name: str, request: Request) -> dict[str, Any]:
        check_admin(request, service)
        body = await optional_json(request)
        if not isinstance(body, dict) or not set(body) <= {"policy", "interval_s"}:
            raise ValidationError("the body must be an object with policy and/or interval_s")
        policy_name, interval = body.get("policy"), body.get("interval_s")
        if policy_name is not None and not isinstance(policy_name, str):
            raise ValidationError("policy must be a string or null")
        if interval is not None and (isinstance(interval, bool) or not isinstance(interval, int | float)):
            raise ValidationError("interval_s must be a number or null")
        info = await run_in_threadpool(
            lambda: put_group(
                service.db, name, policy_name=policy_name, interval_s=None if interval is None else float(interval)
            )
        )
        service.policies.invalidate()
        return {"name": info.name, "policy": info.policy_name, "interval_s": info.interval_s}
