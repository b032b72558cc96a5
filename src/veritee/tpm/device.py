"""A TPM 2.0 device through tpm2-pytss (ESAPI) on an explicit TCTI: EKs, AKs, quotes, PCRs, credentials (I/O layer).

Written for TPMs without a resource manager (swtpm on a socket, /dev/tpm0): at most three transient objects may be
loaded, so every operation loads what it needs and flushes every transient object and session it created before it
returns — on success and on every failure path. Nothing stays in the TPM between calls; to avoid re-deriving the RSA
EK and re-loading an AK for every quote, the device keeps TPM2_ContextSave blobs of them (encrypted by the TPM, held
in memory, dropped on close) and falls back to CreatePrimary/Load when the TPM rejects one (after a TPM Reset).

Key hierarchy (TCG EK Credential Profile 2.0, TCG TPM v2.0 Provisioning Guidance):

* EK — a primary key in the endorsement hierarchy from a TCG default template, so its public key equals the one in
  the EK certificate: RSA = template L-1 (RSA-2048, AES-128-CFB, policy PolicySecret(TPM_RH_ENDORSEMENT), no
  userWithAuth), ECC = template H-4 (NIST P-384, SHA-384 name, AES-256-CFB, userWithAuth with an empty auth value).
* AK — a restricted signing key created *under the EK* (so it lives in the endorsement hierarchy and quotes show the
  real clock/resetCount): RSA-2048 RSASSA-SHA256 or ECC P-256 ECDSA-SHA256. It is returned as a loadable blob
  (TPM2B_PUBLIC + TPM2B_PRIVATE wrapped by the EK) and reloaded under a re-created EK for each use.
* EK authorisation: a policy session with TPM2_PolicySecret(TPM_RH_ENDORSEMENT) for the RSA EK; the empty password for
  the ECC (H-4) EK, whose userWithAuth is set.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from enum import StrEnum
from types import TracebackType
from typing import Any

from tpm2_pytss import ESAPI, TSS2_Exception
from tpm2_pytss.constants import ESYS_TR, TPM2_ALG, TPM2_CAP, TPM2_ECC, TPM2_SE, TPM2_SU, TPMA_OBJECT
from tpm2_pytss.types import (
    TPM2B_DATA,
    TPM2B_DIGEST,
    TPM2B_ENCRYPTED_SECRET,
    TPM2B_ID_OBJECT,
    TPM2B_PRIVATE,
    TPM2B_PUBLIC,
    TPML_DIGEST_VALUES,
    TPML_PCR_SELECTION,
    TPMS_ATTEST,
    TPMS_CONTEXT,
    TPMS_PCR_SELECTION,
    TPMT_HA,
    TPMT_PUBLIC,
    TPMT_SIG_SCHEME,
    TPMT_SYM_DEF,
    TPMU_HA,
)

from veritee.errors import DecodeError, DeviceError, ValidationError
from veritee.tpm.alg import HashAlg

__all__ = [
    "EK_CERT_NV_INDEX",
    "AkAlg",
    "AttestationKey",
    "EkKind",
    "Quote",
    "TpmCommandError",
    "TpmDevice",
]


class EkKind(StrEnum):
    """Which endorsement key: TCG template L-1 (RSA-2048) or H-4 (ECC NIST P-384, as swtpm provisions it)."""

    RSA = "rsa"
    ECC = "ecc"


class AkAlg(StrEnum):
    """Attestation key algorithms."""

    RSA2048_RSASSA_SHA256 = "rsa2048-rsassa-sha256"
    ECC_P256_ECDSA_SHA256 = "ecc-p256-ecdsa-sha256"

    @property
    def quote_hash(self) -> HashAlg:
        """The signing scheme's hash, which is also the hash of the quote's PCR composite digest."""
        return HashAlg.SHA256


EK_CERT_NV_INDEX = {EkKind.RSA: 0x01C00002, EkKind.ECC: 0x01C00016}
"""NV indices of the EK certificates (TCG EK Credential Profile: RSA-2048 low range, ECC P-384 high range)."""

# TCG EK Credential Profile 2.0: PolicyA_SHA256 = PolicySecret(TPM_RH_ENDORSEMENT) and PolicyB_SHA384.
_EK_POLICY_RSA = bytes.fromhex("837197674484b3f81a90cc8d46a5d724fd52d76e06520b64f2a1da1b331469aa")
_EK_POLICY_ECC384 = bytes.fromhex(
    "b26e7d28d11a50bc53d882bcf5fd3a1a074148bb35d3b4e4cb1c0ad9bde419cacb47ba09699646150f9fc000f3f80e12"
)
_MAX_NONCE = 64
_MAX_PCR = 23
_DEFAULT_NV_CHUNK = 512
_PT_NV_BUFFER_MAX = 0x12C
_SAVED_CONTEXTS = 16
_HR_TRANSIENT = 0x80000000
_HR_LOADED_SESSION = 0x02000000
_HR_SAVED_SESSION = 0x03000000


class TpmCommandError(DeviceError):
    """The TPM (or the TSS talking to it) refused a command; ``rc`` is the TSS2/TPM response code."""

    def __init__(self, command: str, rc: int, detail: str) -> None:
        self.command = command
        self.rc = rc
        super().__init__(f"TPM2_{command} failed: response code 0x{rc:08x} ({detail})")


@dataclass(frozen=True)
class AttestationKey:
    """An AK as a loadable blob: reload it with the same TPM's EK of kind ``parent``."""

    public: bytes
    """Marshaled TPM2B_PUBLIC."""
    private: bytes
    """Marshaled TPM2B_PRIVATE, wrapped by the parent EK (useless on any other TPM)."""
    name: bytes
    """TPM name: nameAlg (2 bytes) || H(TPMT_PUBLIC)."""
    alg: AkAlg
    parent: EkKind


@dataclass(frozen=True)
class Quote:
    """TPM2_Quote output and the PCR values it covers (read right after the quote and checked against its digest)."""

    attest: bytes
    """Marshaled TPMS_ATTEST (the signed message)."""
    signature: bytes
    """Marshaled TPMT_SIGNATURE."""
    pcrs: dict[str, dict[int, bytes]]
    """bank label -> PCR index -> value, in the order of the quote's PCR selection."""


@contextmanager
def _command(name: str) -> Iterator[None]:
    try:
        yield
    except TSS2_Exception as exc:
        raise TpmCommandError(name, int(exc.rc), str(exc)) from exc


def _ek_template(kind: EkKind) -> TPM2B_PUBLIC:
    area = TPMT_PUBLIC()
    attrs = (
        TPMA_OBJECT.FIXEDTPM
        | TPMA_OBJECT.FIXEDPARENT
        | TPMA_OBJECT.SENSITIVEDATAORIGIN
        | TPMA_OBJECT.ADMINWITHPOLICY
        | TPMA_OBJECT.RESTRICTED
        | TPMA_OBJECT.DECRYPT
    )
    if kind is EkKind.RSA:  # template L-1
        area.type = TPM2_ALG.RSA
        area.nameAlg = TPM2_ALG.SHA256
        area.objectAttributes = attrs
        area.authPolicy = TPM2B_DIGEST(_EK_POLICY_RSA)
        detail = area.parameters.rsaDetail
        detail.symmetric.algorithm = TPM2_ALG.AES
        detail.symmetric.keyBits.aes = 128
        detail.symmetric.mode.aes = TPM2_ALG.CFB
        detail.scheme.scheme = TPM2_ALG.NULL
        detail.keyBits = 2048
        detail.exponent = 0
        area.unique.rsa = b"\x00" * 256
    else:  # template H-4
        area.type = TPM2_ALG.ECC
        area.nameAlg = TPM2_ALG.SHA384
        area.objectAttributes = attrs | TPMA_OBJECT.USERWITHAUTH
        area.authPolicy = TPM2B_DIGEST(_EK_POLICY_ECC384)
        ecc = area.parameters.eccDetail
        ecc.symmetric.algorithm = TPM2_ALG.AES
        ecc.symmetric.keyBits.aes = 256
        ecc.symmetric.mode.aes = TPM2_ALG.CFB
        ecc.scheme.scheme = TPM2_ALG.NULL
        ecc.curveID = TPM2_ECC.NIST_P384
        ecc.kdf.scheme = TPM2_ALG.NULL
    return TPM2B_PUBLIC(publicArea=area)


def _ak_template(alg: AkAlg) -> TPM2B_PUBLIC:
    area = TPMT_PUBLIC()
    area.nameAlg = TPM2_ALG.SHA256
    area.objectAttributes = (
        TPMA_OBJECT.FIXEDTPM
        | TPMA_OBJECT.FIXEDPARENT
        | TPMA_OBJECT.SENSITIVEDATAORIGIN
        | TPMA_OBJECT.USERWITHAUTH
        | TPMA_OBJECT.RESTRICTED
        | TPMA_OBJECT.SIGN_ENCRYPT
    )
    if alg is AkAlg.RSA2048_RSASSA_SHA256:
        area.type = TPM2_ALG.RSA
        detail = area.parameters.rsaDetail
        detail.symmetric.algorithm = TPM2_ALG.NULL
        detail.scheme.scheme = TPM2_ALG.RSASSA
        detail.scheme.details.rsassa.hashAlg = TPM2_ALG.SHA256
        detail.keyBits = 2048
        detail.exponent = 0
    else:
        area.type = TPM2_ALG.ECC
        ecc = area.parameters.eccDetail
        ecc.symmetric.algorithm = TPM2_ALG.NULL
        ecc.scheme.scheme = TPM2_ALG.ECDSA
        ecc.scheme.details.ecdsa.hashAlg = TPM2_ALG.SHA256
        ecc.curveID = TPM2_ECC.NIST_P256
        ecc.kdf.scheme = TPM2_ALG.NULL
    return TPM2B_PUBLIC(publicArea=area)


Selection = list[tuple[HashAlg, list[int]]]


def parse_selection(selection: Mapping[str, Sequence[int]]) -> Selection:
    """Validate ``{"sha256": [0, 1, ...], ...}``: known banks, each once, PCRs 0..23; PCRs are sorted, deduplicated."""
    if not selection:
        raise ValidationError("empty PCR selection")
    out: Selection = []
    for label, pcrs in selection.items():
        alg = HashAlg.from_label(label)
        if any(alg is seen for seen, _ in out):
            raise ValidationError(f"PCR bank {alg.label} selected twice")
        indices = sorted(set(pcrs))
        if not indices:
            raise ValidationError(f"no PCRs selected in bank {alg.label}")
        if any(isinstance(i, bool) or not isinstance(i, int) or not 0 <= i <= _MAX_PCR for i in indices):
            raise ValidationError(f"PCR indices must be integers 0..{_MAX_PCR}: {indices}")
        out.append((alg, indices))
    return out


def _tpml_selection(selection: Selection) -> TPML_PCR_SELECTION:
    items = []
    for alg, pcrs in selection:
        bitmap = bytearray(3)
        for pcr in pcrs:
            bitmap[pcr // 8] |= 1 << (pcr % 8)
        items.append(TPMS_PCR_SELECTION(hash=TPM2_ALG(int(alg)), sizeofSelect=3, pcrSelect=bytes(bitmap)))
    return TPML_PCR_SELECTION(items)


def _selected(selection: TPML_PCR_SELECTION) -> list[tuple[HashAlg, int]]:
    out: list[tuple[HashAlg, int]] = []
    for item in selection:
        alg = HashAlg.from_id(int(item.hash))
        bitmap = bytes(item.pcrSelect)[: int(item.sizeofSelect)]
        out.extend((alg, 8 * i + bit) for i, byte in enumerate(bitmap) for bit in range(8) if byte >> bit & 1)
    return out


def pcr_composite(alg: HashAlg, pcrs: Mapping[str, Mapping[int, bytes]]) -> bytes:
    """The quote's pcrDigest over ``pcrs``: H(values in selection order — banks as given, PCRs ascending)."""
    h = alg.new()
    for bank in pcrs.values():
        for index in sorted(bank):
            h.update(bank[index])
    return h.digest()


def _unmarshal_exact(cls: Any, data: bytes, what: str) -> Any:
    try:
        obj, used = cls.unmarshal(data)
    except TSS2_Exception as exc:
        raise DecodeError(f"malformed {what}: {exc}", offset=0) from None
    if used != len(data):
        raise DecodeError(f"{len(data) - used} trailing bytes after {what}", offset=int(used))
    return obj


def _der_length(data: bytes) -> int:
    """Total length of the DER TLV at the start of ``data`` (EK certificates in NV may carry padding after it)."""
    if len(data) < 2 or data[0] != 0x30:
        raise DecodeError("EK certificate is not a DER SEQUENCE", offset=0)
    first = data[1]
    if first < 0x80:
        return 2 + first
    count = first & 0x7F
    if not 1 <= count <= 3 or len(data) < 2 + count:
        raise DecodeError("bad DER length in EK certificate", offset=1)
    total = 2 + count + int.from_bytes(data[2 : 2 + count], "big")
    if total > len(data):
        raise DecodeError(f"EK certificate claims {total} bytes, NV holds {len(data)}", offset=1)
    return total


class TpmDevice:
    """One ESAPI connection to a TPM at an explicit TCTI (e.g. ``swtpm:host=127.0.0.1,port=2321``).

    Use as a context manager. Not thread-safe. swtpm serves one connection at a time: a second device opened on the
    same swtpm waits until the first one is closed.
    """

    def __init__(self, tcti: str) -> None:
        self.tcti = tcti
        self._esys: ESAPI | None = None
        self._nv_chunk: int | None = None
        self._saved: OrderedDict[EkKind | AttestationKey, TPMS_CONTEXT] = OrderedDict()
        self._ek_public: dict[EkKind, TPM2B_PUBLIC] = {}

    # --- connection ---------------------------------------------------------------------------------------------
    def open(self) -> TpmDevice:
        if self._esys is None:
            try:
                self._esys = ESAPI(self.tcti)
            except TSS2_Exception as exc:
                raise TpmCommandError("Startup", int(exc.rc), f"cannot open TPM at {self.tcti!r}: {exc}") from exc
        return self

    def close(self) -> None:
        esys, self._esys = self._esys, None
        self._saved.clear()
        self._ek_public.clear()
        if esys is not None:
            esys.close()

    def __enter__(self) -> TpmDevice:
        return self.open()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def startup(self, *, clear: bool = True) -> None:
        """TPM2_Startup(CLEAR) — or STATE for a resume — as firmware sends it after power-on."""
        with _command("Startup"):
            self._tpm.startup(TPM2_SU.CLEAR if clear else TPM2_SU.STATE)

    @property
    def _tpm(self) -> ESAPI:
        if self._esys is None:
            raise DeviceError(f"TPM device {self.tcti!r} is not open")
        return self._esys

    def open_handles(self) -> list[int]:
        """TPM handles of transient objects and of loaded or saved sessions (none after any method here returns)."""
        handles: set[int] = set()
        for first, types in (
            (_HR_TRANSIENT, {0x80}),
            (_HR_LOADED_SESSION, {0x02, 0x03}),
            (_HR_SAVED_SESSION, {0x02, 0x03}),
        ):
            start = first
            while True:
                with _command("GetCapability"):
                    more, data = self._tpm.get_capability(TPM2_CAP.HANDLES, start, 64)
                batch = [int(h) for h in data.data.handles if int(h) >> 24 in types]
                handles.update(batch)
                if not (more and batch):
                    break
                start = batch[-1] + 1
        return sorted(handles)

    # --- transient objects and sessions (always flushed) -----------------------------------------------------------
    def _flush(self, handle: ESYS_TR) -> None:
        with _command("FlushContext"):
            self._tpm.flush_context(handle)

    def _load_saved(self, key: EkKind | AttestationKey) -> ESYS_TR | None:
        """ContextLoad of an object this device saved before; None if there is none or the TPM no longer takes it."""
        saved = self._saved.get(key)
        if saved is None:
            return None
        try:
            handle = self._tpm.context_load(saved)
        except TSS2_Exception:  # TPM Reset/Restart since the save invalidates saved contexts: load the key afresh
            del self._saved[key]
            return None
        self._saved.move_to_end(key)
        return handle

    def _save(self, key: EkKind | AttestationKey, handle: ESYS_TR) -> None:
        """Keep a saved context (an encrypted blob held here, not a TPM slot) to reload ``handle`` fast next time."""
        with _command("ContextSave"):
            self._saved[key] = self._tpm.context_save(handle)
        while len(self._saved) > _SAVED_CONTEXTS:
            self._saved.popitem(last=False)

    @contextmanager
    def _ek(self, kind: EkKind, *, fresh: bool = False) -> Iterator[tuple[ESYS_TR, TPM2B_PUBLIC]]:
        """The EK loaded in a transient slot (from a saved context when possible), flushed on exit."""
        handle = None if fresh else self._load_saved(kind)
        if handle is None:
            with _command("CreatePrimary"):
                handle, public, _, _, _ = self._tpm.create_primary(None, _ek_template(kind), ESYS_TR.ENDORSEMENT)
        else:
            public = self._ek_public[kind]
        try:
            if kind not in self._saved:
                self._save(kind, handle)
                self._ek_public[kind] = public
            yield handle, public
        finally:
            self._flush(handle)

    @contextmanager
    def _ek_auth(self, kind: EkKind) -> Iterator[ESYS_TR]:
        """The session that authorises USER-role use of the EK."""
        if kind is EkKind.ECC:
            yield ESYS_TR.PASSWORD
            return
        with _command("StartAuthSession"):
            session = self._tpm.start_auth_session(
                ESYS_TR.NONE, ESYS_TR.NONE, TPM2_SE.POLICY, TPMT_SYM_DEF(algorithm=TPM2_ALG.NULL), TPM2_ALG.SHA256
            )
        try:
            with _command("PolicySecret"):
                self._tpm.policy_secret(ESYS_TR.ENDORSEMENT, session)
            yield session
        finally:
            self._flush(session)

    @contextmanager
    def _loaded_ak(self, ak: AttestationKey) -> Iterator[ESYS_TR]:
        """The AK loaded in a transient slot (saved context, else TPM2_Load under its EK), flushed on exit."""
        private = _unmarshal_exact(TPM2B_PRIVATE, ak.private, "AK TPM2B_PRIVATE")
        public = _unmarshal_exact(TPM2B_PUBLIC, ak.public, "AK TPM2B_PUBLIC")
        handle = self._load_saved(ak)
        if handle is None:
            with self._ek(ak.parent) as (ek, _), self._ek_auth(ak.parent) as session, _command("Load"):
                handle = self._tpm.load(ek, private, public, session1=session)
        try:
            if ak not in self._saved:
                self._save(ak, handle)
            yield handle
        finally:
            self._flush(handle)

    # --- endorsement --------------------------------------------------------------------------------------------
    def read_ek_certificate(self, kind: EkKind = EkKind.RSA) -> bytes:
        """The DER EK certificate stored in NV (0x01c00002 RSA, 0x01c00016 ECC), without NV padding."""
        index = EK_CERT_NV_INDEX[kind]
        with _command("NV_ReadPublic"):
            nv = self._tpm.tr_from_tpmpublic(index)
        try:
            with _command("NV_ReadPublic"):
                size = int(self._tpm.nv_read_public(nv)[0].nvPublic.dataSize)
            chunk = self._nv_chunk_size()
            data = b""
            while len(data) < size:
                with _command("NV_Read"):
                    data += bytes(self._tpm.nv_read(nv, min(chunk, size - len(data)), len(data)))
        finally:
            self._tpm.tr_close(nv)
        return data[: _der_length(data)]

    def _nv_chunk_size(self) -> int:
        if self._nv_chunk is None:
            with _command("GetCapability"):
                _, data = self._tpm.get_capability(TPM2_CAP.TPM_PROPERTIES, _PT_NV_BUFFER_MAX, 1)
            props = [p for p in data.data.tpmProperties if int(p.property) == _PT_NV_BUFFER_MAX]
            self._nv_chunk = int(props[0].value) if props else _DEFAULT_NV_CHUNK
        return self._nv_chunk

    def create_ek(self, kind: EkKind = EkKind.RSA) -> bytes:
        """Create the EK from its TCG default template (then flush it); returns its marshaled TPM2B_PUBLIC."""
        with self._ek(kind, fresh=True) as (_, public):
            return bytes(public.marshal())

    # --- attestation keys ---------------------------------------------------------------------------------------
    def create_ak(self, alg: AkAlg = AkAlg.RSA2048_RSASSA_SHA256, *, parent: EkKind = EkKind.RSA) -> AttestationKey:
        """Create a restricted signing AK under the EK ``parent``; returns it as a blob to reload for later use."""
        with self._ek(parent) as (ek, _), self._ek_auth(parent) as session, _command("Create"):
            private, public, _, _, _ = self._tpm.create(ek, None, _ak_template(alg), session1=session)
        name = bytes(public.get_name().marshal())[2:]
        return AttestationKey(bytes(public.marshal()), bytes(private.marshal()), name, alg, parent)

    def quote(
        self, ak: AttestationKey, pcr_selection: Mapping[str, Sequence[int]], nonce: bytes, *, attempts: int = 3
    ) -> Quote:
        """TPM2_Quote over ``pcr_selection`` with ``nonce`` as qualifying data, plus the quoted PCR values.

        The PCRs are read right after the quote and their composite must equal the quote's pcrDigest; if a PCR was
        extended in between (possible on a shared TPM), the quote is taken again, up to ``attempts`` times.
        """
        selection = parse_selection(pcr_selection)
        if len(nonce) > _MAX_NONCE:
            raise ValidationError(f"nonce of {len(nonce)} bytes exceeds the TPM's {_MAX_NONCE}")
        tpml = _tpml_selection(selection)
        with self._loaded_ak(ak) as handle:
            for _ in range(max(1, attempts)):
                with _command("Quote"):
                    attest, signature = self._tpm.quote(
                        handle, tpml, TPM2B_DATA(nonce), TPMT_SIG_SCHEME(scheme=TPM2_ALG.NULL)
                    )
                attest_bytes = bytes(attest.marshal())[2:]
                quoted = bytes(_unmarshal_exact(TPMS_ATTEST, attest_bytes, "TPMS_ATTEST").attested.quote.pcrDigest)
                pcrs = self.pcr_read(pcr_selection)
                if pcr_composite(ak.alg.quote_hash, pcrs) == quoted:
                    return Quote(attest_bytes, bytes(signature.marshal()), pcrs)
        raise DeviceError(f"PCRs kept changing during TPM2_Quote ({attempts} attempts); try again")

    # --- PCRs ---------------------------------------------------------------------------------------------------
    def pcr_read(self, selection: Mapping[str, Sequence[int]]) -> dict[str, dict[int, bytes]]:
        """Current PCR values: bank label -> index -> value (several TPM2_PCR_Read calls: each returns at most 8)."""
        parsed = parse_selection(selection)
        pending = {alg: set(pcrs) for alg, pcrs in parsed}
        values: dict[HashAlg, dict[int, bytes]] = {alg: {} for alg, _ in parsed}
        while any(pending.values()):
            request = [(alg, sorted(pcrs)) for alg, pcrs in pending.items() if pcrs]
            with _command("PCR_Read"):
                _, returned, digests = self._tpm.pcr_read(_tpml_selection(request))
            slots = _selected(returned)
            if not slots:
                banks = ", ".join(alg.label for alg, _ in request)
                raise DeviceError(f"TPM returned no values for PCR bank(s) {banks}: not active on this TPM?")
            if len(slots) != len(digests):
                raise DeviceError(f"TPM2_PCR_Read selected {len(slots)} PCRs but returned {len(digests)} values")
            for (alg, pcr), digest in zip(slots, digests, strict=True):
                if alg not in pending or pcr not in pending[alg]:
                    raise DeviceError(f"TPM2_PCR_Read returned unrequested PCR {alg.label}:{pcr}")
                values[alg][pcr] = bytes(digest)
                pending[alg].discard(pcr)
        return {alg.label: dict(sorted(bank.items())) for alg, bank in values.items()}

    def pcr_extend(self, pcr: int, digests: Mapping[str, bytes]) -> None:
        """TPM2_PCR_Extend of PCR ``pcr`` with one digest per bank (bank label -> digest of that bank's size)."""
        if isinstance(pcr, bool) or not 0 <= pcr <= _MAX_PCR:
            raise ValidationError(f"PCR index must be 0..{_MAX_PCR}, not {pcr}")
        if not digests:
            raise ValidationError("no digests to extend")
        values = []
        for label, digest in digests.items():
            alg = HashAlg.from_label(label)
            if len(digest) != alg.digest_size:
                raise ValidationError(f"{alg.label} digest must be {alg.digest_size} bytes, not {len(digest)}")
            values.append(TPMT_HA(hashAlg=TPM2_ALG(int(alg)), digest=TPMU_HA(**{alg.name.lower(): digest})))
        with _command("PCR_Extend"):
            self._tpm.pcr_extend(ESYS_TR(ESYS_TR.PCR0 + pcr), TPML_DIGEST_VALUES(values))

    # --- credential activation ------------------------------------------------------------------------------------
    def activate_credential(
        self, ak: AttestationKey, ek: EkKind, credential_blob: bytes, encrypted_secret: bytes
    ) -> bytes:
        """TPM2_ActivateCredential: recover the secret that ``make_credential`` bound to this AK's name and this EK.

        ``credential_blob`` / ``encrypted_secret`` are marshaled TPM2B_ID_OBJECT / TPM2B_ENCRYPTED_SECRET. A blob made
        for another AK name or EK fails with :class:`TpmCommandError` (TPM_RC_INTEGRITY or a decryption error code).
        """
        blob = _unmarshal_exact(TPM2B_ID_OBJECT, credential_blob, "credential blob (TPM2B_ID_OBJECT)")
        secret = _unmarshal_exact(TPM2B_ENCRYPTED_SECRET, encrypted_secret, "TPM2B_ENCRYPTED_SECRET")
        with (
            self._loaded_ak(ak) as ak_handle,
            self._ek(ek) as (ek_handle, _),
            self._ek_auth(ek) as session,
            _command("ActivateCredential"),
        ):
            cert_info = self._tpm.activate_credential(
                ak_handle, ek_handle, blob, secret, session1=ESYS_TR.PASSWORD, session2=session
            )
        return bytes(cert_info.marshal())[2:]
