"""A TEE master key sealed by a TPM: the software TEE's secrets only open on the TPM that sealed them.

The key is 32 random bytes sealed in a keyed-hash object under a storage root key (SRK: ECC P-256 primary in the
owner hierarchy, the TCG default storage template, re-derived on each use). The sealed object (TPM2B_PUBLIC +
TPM2B_PRIVATE, encrypted by the SRK) is kept in a 0600 file; copying it to another machine is useless, and so is the
state directory without the TPM. Each ``load`` opens the TPM, unseals, and flushes every object it loaded.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Final

from tpm2_pytss import ESAPI, TSS2_Exception
from tpm2_pytss.constants import ESYS_TR, TPMA_OBJECT
from tpm2_pytss.types import (
    TPM2B_PRIVATE,
    TPM2B_PUBLIC,
    TPM2B_SENSITIVE_CREATE,
    TPM2B_SENSITIVE_DATA,
    TPMS_SENSITIVE_CREATE,
)

from veritee import cbor
from veritee.errors import DecodeError, KeyFormatError, StorageError
from veritee.service.tee_crypto import KEY_SIZE, check_private, write_private_file
from veritee.tpm.device import TpmCommandError

__all__ = ["TpmSealedMasterKey"]

_SRK_TEMPLATE: Final = "ecc256:aes128cfb"
_SEALED_ATTRIBUTES: Final = TPMA_OBJECT.FIXEDTPM | TPMA_OBJECT.FIXEDPARENT | TPMA_OBJECT.USERWITHAUTH


class TpmSealedMasterKey:
    """A :class:`~veritee.service.tee_crypto.MasterKeySource` whose key is sealed by the TPM at ``tcti``."""

    def __init__(self, tcti: str, sealed_file: Path) -> None:
        self.tcti = tcti
        self.sealed_file = Path(sealed_file)

    @contextmanager
    def _srk(self) -> Iterator[tuple[ESAPI, ESYS_TR]]:
        try:
            esys = ESAPI(self.tcti)
        except TSS2_Exception as exc:
            raise TpmCommandError("Startup", int(exc.rc), f"cannot open TPM at {self.tcti!r}: {exc}") from exc
        try:
            try:
                srk, *_ = esys.create_primary(TPM2B_SENSITIVE_CREATE(), _SRK_TEMPLATE, ESYS_TR.OWNER)
            except TSS2_Exception as exc:
                raise TpmCommandError("CreatePrimary", int(exc.rc), str(exc)) from exc
            try:
                yield esys, srk
            finally:
                esys.flush_context(srk)
        finally:
            esys.close()

    def load(self) -> bytes:
        if not self.sealed_file.exists():
            return self._create()
        check_private(self.sealed_file)
        try:
            public_bytes, private_bytes = cbor.decode(self.sealed_file.read_bytes())
            public, _ = TPM2B_PUBLIC.unmarshal(bytes(public_bytes))
            private, _ = TPM2B_PRIVATE.unmarshal(bytes(private_bytes))
        except (DecodeError, ValueError, TypeError, TSS2_Exception) as exc:
            raise StorageError(f"{self.sealed_file}: not a sealed TEE master key: {exc}") from None
        except OSError as exc:
            raise StorageError(f"cannot read {self.sealed_file}: {exc}") from exc
        with self._srk() as (esys, srk):
            try:
                sealed = esys.load(srk, private, public)
            except TSS2_Exception as exc:
                raise TpmCommandError("Load", int(exc.rc), f"the sealed master key is not this TPM's: {exc}") from exc
            try:
                key = bytes(esys.unseal(sealed))
            except TSS2_Exception as exc:
                raise TpmCommandError("Unseal", int(exc.rc), str(exc)) from exc
            finally:
                esys.flush_context(sealed)
        if len(key) != KEY_SIZE:
            raise KeyFormatError(f"the unsealed TEE master key has {len(key)} bytes, not {KEY_SIZE}")
        return key

    def _create(self) -> bytes:
        key = secrets.token_bytes(KEY_SIZE)
        template = TPM2B_PUBLIC.parse("keyedhash", objectAttributes=_SEALED_ATTRIBUTES)
        sensitive = TPM2B_SENSITIVE_CREATE(TPMS_SENSITIVE_CREATE(data=TPM2B_SENSITIVE_DATA(key)))
        with self._srk() as (esys, srk):
            try:
                private, public, *_ = esys.create(srk, sensitive, template)
            except TSS2_Exception as exc:
                raise TpmCommandError("Create", int(exc.rc), str(exc)) from exc
        blob = cbor.encode([bytes(public.marshal()), bytes(private.marshal())])
        self.sealed_file.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        write_private_file(self.sealed_file, blob)
        return key
