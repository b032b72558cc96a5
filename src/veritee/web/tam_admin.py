"""The TAM's admin REST API (bearer tokens; see :mod:`veritee.web.auth`).

* ``/admin/tcs``: POST a SUIT envelope (the raw bytes; verified against the TC signers, refused with nothing stored
  when tampered or untrusted), GET the catalog, GET / DELETE one version;
* ``/admin/signers``: the TC signer trust anchors (GET, POST a PEM, DELETE);
* ``/admin/devices``: GET the list, POST to pre-register a device by its TEEP key, GET / PATCH one (attributes, name,
  attestation key), POST ``/block`` and ``/unblock`` (block is what a platform verifier's remediation calls to stop
  deployments to a quarantined node), GET ``/plan`` (what an Update would carry now);
* ``/admin/deployments``: POST (component, selector, minimum version), GET, DELETE.

Devices are addressed by numeric id, by the hex thumbprint of their TEEP key, or by their name when it is unique.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Query, Request, Response
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from veritee.cose import CoseKey
from veritee.errors import ValidationError
from veritee.service.tam import TamService
from veritee.service.tam_teep import TeepEndpoint
from veritee.web.auth import bearer_auth
from veritee.web.teep_http import read_limited

__all__ = ["admin_router"]


class SignerIn(BaseModel):
    name: str = Field(min_length=1, max_length=200)
    public_key_pem: str = Field(min_length=1, description="PEM public key, private key or certificate of the signer")


class SignerOut(BaseModel):
    id: int
    name: str
    thumbprint: str
    public_key_pem: str
    created_at: str | None


class TcOut(BaseModel):
    id: int
    component_id: str
    manifest_id: str
    sequence_number: int
    manifest_digest: str
    image_digest: str | None
    signer_id: int
    size: int
    description: str | None
    created_at: str | None


class ComponentOut(BaseModel):
    component_id: str
    sequence_number: int | None
    image_digest: str | None
    installed: bool
    changed_at: str | None


class DeviceOut(BaseModel):
    id: int
    name: str | None
    key_thumbprint: str
    attributes: dict[str, Any]
    last_seen_at: str | None
    attestation_status: str
    attestation_at: str | None
    attestation: dict[str, Any] | None
    has_attestation_key: bool
    blocked: bool
    blocked_reason: str | None
    last_error: str | None
    components: list[ComponentOut]
    created_at: str | None


class DeviceIn(BaseModel):
    teep_key_pem: str | None = Field(default=None, description="the TEEP Agent's public key (PEM)")
    teep_key_cose: str | None = Field(default=None, description="or as a COSE_Key, hex")
    name: str | None = Field(default=None, max_length=200)
    attributes: dict[str, str | int | float | bool] = Field(default_factory=dict)
    attestation_key_pem: str | None = Field(default=None, description="the key that signs this device's EATs (PEM)")


class DevicePatch(BaseModel):
    attributes: dict[str, str | int | float | bool | None] | None = Field(
        default=None, description="merged into the device's attributes; null removes one"
    )
    name: str | None = Field(default=None, max_length=200)
    attestation_key_pem: str | None = None


class BlockIn(BaseModel):
    reason: str = Field(default="blocked by an administrator", max_length=2000)


class PlanOut(BaseModel):
    install: list[dict[str, Any]]
    remove: list[dict[str, Any]]
    skipped: list[dict[str, Any]]


class DeploymentIn(BaseModel):
    component_id: str = Field(min_length=1, max_length=512)
    selector: str = Field(min_length=1, description="all | attr:KEY=VALUE[,...] | device:ID[,...]")
    min_sequence_number: int | None = Field(default=None, ge=0)


class DeploymentOut(BaseModel):
    id: int
    component_id: str
    selector: str
    min_sequence_number: int | None
    created_at: str | None


def _pem_key(pem: str, what: str) -> CoseKey:
    try:
        return CoseKey.from_pem(pem.encode("utf-8"))
    except UnicodeError:
        raise ValidationError(f"{what} must be PEM text") from None


def admin_router(service: TamService, endpoint: TeepEndpoint, *, max_envelope: int = 16 * 1024 * 1024) -> APIRouter:
    """The admin API of a TAM (see the module docstring); every route requires an admin bearer token."""
    router = APIRouter(prefix="/admin", tags=["admin"], dependencies=[Depends(bearer_auth(service.authenticate))])

    # --- catalog ------------------------------------------------------------------------------------------------
    @router.post(
        "/tcs",
        status_code=201,
        response_model=TcOut,
        summary="Upload a Trusted Component version (a signed SUIT envelope)",
        openapi_extra={
            "requestBody": {
                "required": True,
                "content": {"application/suit-envelope+cose": {}, "application/octet-stream": {}},
            }
        },
    )
    async def upload_tc(request: Request, description: str | None = Query(None, max_length=2000)) -> dict[str, Any]:
        envelope = await read_limited(request, max_envelope)
        if not envelope:
            raise ValidationError("the request body must be the SUIT envelope")
        view = await run_in_threadpool(service.upload_tc, envelope, description)
        return view.to_json()

    @router.get("/tcs", response_model=list[TcOut], summary="The catalog")
    def list_tcs(component_id: str | None = None) -> list[dict[str, Any]]:
        return [v.to_json() for v in service.list_tcs(component_id)]

    @router.get("/tcs/{tc_id}", response_model=TcOut, summary="One catalog version")
    def get_tc(tc_id: int) -> dict[str, Any]:
        return service.tc(tc_id).to_json()

    @router.delete("/tcs/{tc_id}", status_code=204, summary="Withdraw a catalog version (devices keep theirs)")
    def delete_tc(tc_id: int) -> Response:
        service.delete_tc(tc_id)
        return Response(status_code=204)

    # --- signers ------------------------------------------------------------------------------------------------
    @router.get("/signers", response_model=list[SignerOut], summary="TC signer trust anchors")
    def list_signers() -> list[dict[str, Any]]:
        return [v.to_json() for v in service.list_signers()]

    @router.post("/signers", status_code=201, response_model=SignerOut, summary="Trust a TC signer")
    def add_signer(body: SignerIn) -> dict[str, Any]:
        return service.add_signer(body.name, body.public_key_pem).to_json()

    @router.delete("/signers/{signer_id}", status_code=204, summary="Stop trusting a TC signer")
    def delete_signer(signer_id: int) -> Response:
        service.delete_signer(signer_id)
        return Response(status_code=204)

    # --- devices ------------------------------------------------------------------------------------------------
    @router.get("/devices", response_model=list[DeviceOut], summary="Devices")
    def list_devices() -> list[dict[str, Any]]:
        return [v.to_json() for v in service.list_devices()]

    @router.post("/devices", status_code=201, response_model=DeviceOut, summary="Pre-register a device")
    def register_device(body: DeviceIn) -> dict[str, Any]:
        if (body.teep_key_pem is None) == (body.teep_key_cose is None):
            raise ValidationError("give the TEEP key as teep_key_pem or teep_key_cose (exactly one)")
        if body.teep_key_pem is not None:
            key = _pem_key(body.teep_key_pem, "teep_key_pem")
        else:
            try:
                key = CoseKey.from_cose_key(bytes.fromhex(body.teep_key_cose or ""))
            except ValueError as exc:
                raise ValidationError(f"teep_key_cose is not a hex COSE_Key: {exc}") from None
        attester = _pem_key(body.attestation_key_pem, "attestation_key_pem") if body.attestation_key_pem else None
        view = service.register_device(key, name=body.name, attributes=body.attributes, attestation_key=attester)
        return view.to_json()

    @router.get("/devices/{ref}", response_model=DeviceOut, summary="One device (id or key thumbprint)")
    def get_device(ref: str) -> dict[str, Any]:
        return service.device(ref).to_json()

    @router.patch("/devices/{ref}", response_model=DeviceOut, summary="Change attributes, name or attestation key")
    def patch_device(ref: str, body: DevicePatch) -> dict[str, Any]:
        attester = _pem_key(body.attestation_key_pem, "attestation_key_pem") if body.attestation_key_pem else None
        view = service.update_device(ref, attributes=body.attributes, name=body.name, attestation_key=attester)
        return view.to_json()

    @router.post("/devices/{ref}/block", response_model=DeviceOut, summary="Stop deployments to a device")
    def block_device(ref: str, body: BlockIn | None = None) -> dict[str, Any]:
        return service.block_device(ref, (body or BlockIn()).reason).to_json()

    @router.post("/devices/{ref}/unblock", response_model=DeviceOut, summary="Resume deployments to a device")
    def unblock_device(ref: str) -> dict[str, Any]:
        return service.unblock_device(ref).to_json()

    @router.get("/devices/{ref}/plan", response_model=PlanOut, summary="What an Update to this device would carry")
    def device_plan(ref: str) -> dict[str, Any]:
        return endpoint.preview(ref).to_json()

    # --- deployments --------------------------------------------------------------------------------------------
    @router.post("/deployments", status_code=201, response_model=DeploymentOut, summary="Deploy a TC to a selector")
    def add_deployment(body: DeploymentIn) -> dict[str, Any]:
        return service.add_deployment(body.component_id, body.selector, body.min_sequence_number).to_json()

    @router.get("/deployments", response_model=list[DeploymentOut], summary="Deployment policy")
    def list_deployments(component_id: str | None = None) -> list[dict[str, Any]]:
        return [v.to_json() for v in service.list_deployments(component_id)]

    @router.delete("/deployments/{deployment_id}", status_code=204, summary="Delete a deployment")
    def delete_deployment(deployment_id: int) -> Response:
        service.delete_deployment(deployment_id)
        return Response(status_code=204)

    return router
