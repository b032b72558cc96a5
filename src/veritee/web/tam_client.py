"""A client of the TAM's admin API (what ``veritee tc|device|deploy`` use; a platform verifier's remediation can call
:meth:`TamAdminClient.block` the same way).

HTTP errors come back as the error families the server mapped them from (401 AuthError, 404 NotFoundError, 409
ConflictError, 422 VerificationError, other 4xx ValidationError, 5xx and network failures TransportError), with the
server's problem detail as the message. Redirects are never followed.
"""

from __future__ import annotations

import ssl
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx

from veritee.errors import (
    AuthError,
    ConflictError,
    NotFoundError,
    TransportError,
    ValidationError,
    VerificationError,
    VeriteeError,
)

__all__ = ["TamAdminClient", "tls_verify"]


def tls_verify(ca_file: Path | None) -> ssl.SSLContext | bool:
    """Certificate verification against ``ca_file`` (a PEM CA bundle), or the system store when None."""
    if ca_file is None:
        return True
    try:
        return ssl.create_default_context(cafile=str(ca_file))
    except (OSError, ssl.SSLError) as exc:
        raise TransportError(f"cannot load the CA bundle {ca_file}: {exc}") from None


def _error(response: httpx.Response) -> VeriteeError:
    try:
        body = response.json()
        detail = body.get("detail") if isinstance(body, dict) else None
    except ValueError:
        detail = None
    message = f"HTTP {response.status_code}: {detail if isinstance(detail, str) else response.reason_phrase}"
    status = response.status_code
    if status == 401:
        return AuthError(message)
    if status == 404:
        return NotFoundError(message)
    if status == 409:
        return ConflictError(message)
    if status == 422:
        return VerificationError(message)
    if 400 <= status < 500:
        return ValidationError(message)
    return TransportError(message)


class TamAdminClient:
    """Calls the admin API at ``base_url`` with a bearer ``token``."""

    def __init__(
        self,
        base_url: str,
        token: str,
        *,
        verify: ssl.SSLContext | bool = True,
        timeout: float = 30.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self._client = httpx.Client(
            base_url=base_url.rstrip("/"),
            headers={"Authorization": f"Bearer {token}"},
            verify=verify,
            timeout=timeout,
            follow_redirects=False,
            transport=transport,
        )

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> TamAdminClient:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        try:
            response = self._client.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            raise TransportError(f"TAM admin API unreachable: {exc}") from None
        if response.status_code >= 300:
            raise _error(response)
        if response.status_code == 204 or not response.content:
            return None
        try:
            return response.json()
        except ValueError as exc:
            raise TransportError(f"the TAM answered non-JSON: {exc}") from None

    # --- catalog ------------------------------------------------------------------------------------------------
    def upload_tc(self, envelope: bytes, description: str | None = None) -> dict[str, Any]:
        params = {"description": description} if description is not None else None
        headers = {"Content-Type": "application/suit-envelope+cose"}
        result: dict[str, Any] = self._call("POST", "/admin/tcs", content=envelope, params=params, headers=headers)
        return result

    def list_tcs(self, component_id: str | None = None) -> list[dict[str, Any]]:
        params = {"component_id": component_id} if component_id is not None else None
        result: list[dict[str, Any]] = self._call("GET", "/admin/tcs", params=params)
        return result

    def delete_tc(self, tc_id: int) -> None:
        self._call("DELETE", f"/admin/tcs/{tc_id}")

    # --- signers ------------------------------------------------------------------------------------------------
    def add_signer(self, name: str, public_key_pem: str) -> dict[str, Any]:
        result: dict[str, Any] = self._call(
            "POST", "/admin/signers", json={"name": name, "public_key_pem": public_key_pem}
        )
        return result

    def list_signers(self) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self._call("GET", "/admin/signers")
        return result

    # --- devices ------------------------------------------------------------------------------------------------
    def list_devices(self) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self._call("GET", "/admin/devices")
        return result

    def device(self, ref: str) -> dict[str, Any]:
        result: dict[str, Any] = self._call("GET", f"/admin/devices/{ref}")
        return result

    def device_plan(self, ref: str) -> dict[str, Any]:
        result: dict[str, Any] = self._call("GET", f"/admin/devices/{ref}/plan")
        return result

    def update_device(self, ref: str, *, attributes: dict[str, Any] | None = None, name: str | None = None) -> Any:
        body: dict[str, Any] = {}
        if attributes is not None:
            body["attributes"] = attributes
        if name is not None:
            body["name"] = name
        return self._call("PATCH", f"/admin/devices/{ref}", json=body)

    def block(self, ref: str, reason: str) -> dict[str, Any]:
        result: dict[str, Any] = self._call("POST", f"/admin/devices/{ref}/block", json={"reason": reason})
        return result

    def unblock(self, ref: str) -> dict[str, Any]:
        result: dict[str, Any] = self._call("POST", f"/admin/devices/{ref}/unblock")
        return result

    # --- deployments --------------------------------------------------------------------------------------------
    def add_deployment(self, component_id: str, selector: str, min_sequence_number: int | None = None) -> Any:
        body = {"component_id": component_id, "selector": selector, "min_sequence_number": min_sequence_number}
        return self._call("POST", "/admin/deployments", json=body)

    def list_deployments(self, component_id: str | None = None) -> list[dict[str, Any]]:
        params = {"component_id": component_id} if component_id is not None else None
        result: list[dict[str, Any]] = self._call("GET", "/admin/deployments", params=params)
        return result

    def delete_deployment(self, deployment_id: int) -> None:
        self._call("DELETE", f"/admin/deployments/{deployment_id}")
