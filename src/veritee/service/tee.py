"""A software TEE for the TEEP Agent: a SUIT component store on disk, isolated and encrypted per security domain.

:class:`SoftTee` is a :class:`~veritee.suit.store.ComponentStore` (and a
:class:`~veritee.teep.agent_store.ManifestInventory`) that the TEEP Agent installs Trusted Components into. Inside:

* **Security domains** (:mod:`veritee.service.tee_domains`): each manifest's trust domain owns its envelope, its
  components, its installed record and its personalization data. A commit that would let one domain replace or remove
  what another owns is refused with :class:`IsolationError`, and the per-domain API (:meth:`SoftTee.domain`,
  :meth:`SoftTee.read_component`, :meth:`SoftTee.write_data`, ...) refuses to read another domain's objects.
* **Encryption at rest** (:mod:`veritee.service.tee_crypto`): every domain has its own AES-256-GCM key, wrapped by the
  TEE master key; component content, ids, records and data are sealed with it (file names are hashes).
* **Atomic installs** (:mod:`veritee.service.tee_generations`): every commit writes a new generation directory, fsyncs
  it and switches an atomically renamed pointer; a crash at any step leaves the previous state (or the complete new
  one) intact and readable after a restart.

Layout: ``<root>/CURRENT`` and one flat directory per generation, ``<root>/gen-N/<domain>~<kind>[~<hash>]``, kind
``key`` (the domain key wrapped by the master key), ``c`` (components), ``m`` (manifest records), ``r`` (the reference
holders of a component, for the SUIT reference counting of dependency manifests), ``d`` (personalization data). One
directory per generation keeps a commit to a few fsyncs.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from veritee import cbor
from veritee.errors import ConfigError, DecodeError, NotFoundError, StorageError, ValidationError, VeriteeError
from veritee.service.tee_crypto import (
    KEY_SIZE,
    MasterKeySource,
    open_object,
    seal_object,
    unwrap_domain_key,
    wrap_domain_key,
)
from veritee.service.tee_domains import (
    CommitPlan,
    DomainRules,
    IsolationError,
    check_domain_name,
    component_key,
    plan_commit,
)
from veritee.service.tee_generations import FaultHook, Generations
from veritee.suit.model import ComponentId, SuitDigest
from veritee.suit.store import InstalledManifest, Invocation, StagingArea

__all__ = ["DomainSummary", "InstalledComponent", "IsolationError", "SoftTee", "TeeDomain"]

_COMPONENT: Final = "c"
_RECORD: Final = "m"
_DATA: Final = "d"
_REFERENCES: Final = "r"
_KIND_NAMES: Final = {_COMPONENT: "component", _RECORD: "manifest-record", _DATA: "data", _REFERENCES: "references"}
_MAX_DATA_NAME: Final = 255

Runner = Callable[[str, ComponentId, bytes, bytes | None], None]
"""Runs an invoked component: (domain, component id, content, arguments); raises a VeriteeError on failure."""


@dataclass
class _View:
    """The index of one generation: which domain holds which object (by file key)."""

    number: int
    wrapped_keys: dict[str, bytes] = field(default_factory=dict)
    objects: dict[str, dict[str, str]] = field(
        default_factory=lambda: {_COMPONENT: {}, _RECORD: {}, _DATA: {}, _REFERENCES: {}}
    )  # kind -> file key -> domain

    def domains(self) -> list[str]:
        return sorted(self.wrapped_keys)


@dataclass(frozen=True)
class InstalledComponent:
    component_id: ComponentId
    size: int
    sha256: bytes


@dataclass(frozen=True)
class DomainSummary:
    """What one security domain holds (for listings)."""

    name: str
    components: tuple[InstalledComponent, ...]
    manifests: tuple[tuple[ComponentId, InstalledManifest], ...]
    data_names: tuple[str, ...]


def _data_key(domain: str, name: str) -> str:
    if not isinstance(name, str) or not 1 <= len(name.encode()) <= _MAX_DATA_NAME:
        raise ValidationError(f"a personalization data name is 1..{_MAX_DATA_NAME} bytes of text")
    return hashlib.sha256(b"data\x00" + domain.encode() + b"\x00" + name.encode()).hexdigest()


def _path(domain: str, kind: str, key: str) -> str:
    return f"{domain}~{kind}~{key}"


def _key_path(domain: str) -> str:
    return f"{domain}~key"


class SoftTee:
    """The software TEE's persistent state under ``root``; ``master`` provides the key that wraps the domain keys.

    Opening recovers from an interrupted commit. Every operation takes the state's lock (shared to read, exclusive to
    commit), so several processes (``agent run`` and ``agent list``) may use the same directory.
    """

    def __init__(
        self,
        root: Path,
        master: MasterKeySource,
        *,
        rules: DomainRules | None = None,
        fault: FaultHook | None = None,
        runner: Runner | None = None,
    ) -> None:
        self.root = Path(root)
        self.rules = rules or DomainRules()
        self.runner = runner
        self.invocations: list[Invocation] = []
        self._master = master.load()
        if len(self._master) != KEY_SIZE:
            raise StorageError(f"the TEE master key must have {KEY_SIZE} bytes")
        self._generations = Generations(self.root, fault=fault)
        self._view: _View | None = None
        self._keys: dict[tuple[str, bytes], bytes] = {}
        with self._generations.lock(exclusive=True):
            self.recovered = self._generations.recover()
            view = self._refresh()
            for domain in view.domains():  # a wrong master key fails here, not at the first read
                self._domain_key(view, domain)

    @property
    def generation(self) -> int:
        with self._locked() as view:
            return view.number

    # --- the index ------------------------------------------------------------------------------------------------
    @contextmanager
    def _locked(self, *, exclusive: bool = False) -> Iterator[_View]:
        with self._generations.lock(exclusive=exclusive):
            yield self._refresh()

    def _refresh(self) -> _View:
        number = self._generations.current()
        if self._view is not None and self._view.number == number:
            return self._view
        view = _View(number)
        for rel in self._generations.files(number):
            parts = rel.split("~")
            if len(parts) == 2 and parts[1] == "key":
                wrapped = self._generations.read(number, rel)
                if wrapped is None:
                    raise StorageError(f"TEE generation {number}: {rel} vanished")
                try:
                    view.wrapped_keys[check_domain_name(parts[0])] = wrapped
                except ConfigError:
                    raise StorageError(f"TEE generation {number}: invalid domain name {parts[0]!r}") from None
            elif len(parts) == 3 and parts[1] in view.objects:
                if view.objects[parts[1]].setdefault(parts[2], parts[0]) != parts[0]:
                    raise StorageError(f"TEE generation {number}: {parts[2]} is in two domains")
            else:
                raise StorageError(f"TEE generation {number}: unexpected file {rel}")
        for kind, objects in view.objects.items():
            for key, domain in objects.items():
                if domain not in view.wrapped_keys:
                    raise StorageError(f"TEE generation {number}: {_KIND_NAMES[kind]} {key} has no domain key")
        self._view = view
        return view

    def _domain_key(self, view: _View, domain: str) -> bytes:
        wrapped = view.wrapped_keys.get(domain)
        if wrapped is None:
            raise NotFoundError(f"no security domain {domain!r}")
        cached = self._keys.get((domain, wrapped))
        if cached is None:
            cached = self._keys[(domain, wrapped)] = unwrap_domain_key(self._master, domain, wrapped)
        return cached

    def _open(self, view: _View, kind: str, key: str) -> tuple[str, list[Any]]:
        domain = view.objects[kind][key]
        sealed = self._generations.read(view.number, _path(domain, kind, key))
        if sealed is None:
            raise StorageError(f"TEE: {_KIND_NAMES[kind]} {domain}/{key} vanished")
        plain = open_object(self._domain_key(view, domain), _KIND_NAMES[kind], domain, key, sealed)
        try:
            value = cbor.decode(plain)
        except DecodeError as exc:
            raise StorageError(f"TEE: {_KIND_NAMES[kind]} {domain}/{key} is corrupt: {exc}") from exc
        if not isinstance(value, list) or len(value) < 2:
            raise StorageError(f"TEE: {_KIND_NAMES[kind]} {domain}/{key} is corrupt")
        return domain, value

    def _component(self, view: _View, component_id: ComponentId) -> tuple[str, bytes] | None:
        key = component_key(component_id)
        if key not in view.objects[_COMPONENT]:
            return None
        domain, (cid, content, *_rest) = self._open(view, _COMPONENT, key)
        if tuple(cid) != tuple(component_id) or not isinstance(content, bytes):
            raise StorageError(f"TEE: component file {domain}/{key} does not hold {component_id!r}")
        return domain, content

    def _record(self, view: _View, manifest_id: ComponentId) -> InstalledManifest | None:
        key = component_key(manifest_id)
        if key not in view.objects[_RECORD]:
            return None
        return self._decode_record(view, key)[1]

    def _decode_record(self, view: _View, key: str) -> tuple[ComponentId, InstalledManifest]:
        domain, value = self._open(view, _RECORD, key)
        try:
            mid, seq, digest = value
            record = InstalledManifest(int(seq), SuitDigest.from_cbor(digest))
        except (ValueError, TypeError, VeriteeError) as exc:
            raise StorageError(f"TEE: manifest record {domain}/{key} is corrupt: {exc}") from exc
        return tuple(bytes(p) for p in mid), record

    # --- ComponentStore -------------------------------------------------------------------------------------------
    def read(self, component_id: ComponentId) -> bytes | None:
        """The content of a component, whatever its domain (the TEEP Agent's privileged view)."""
        with self._locked() as view:
            found = self._component(view, component_id)
        return None if found is None else found[1]

    def slot(self, component_id: ComponentId) -> int | None:
        return None  # no A/B slots in the software TEE

    def installed_manifest(self, manifest_id: ComponentId) -> InstalledManifest | None:
        with self._locked() as view:
            return self._record(view, manifest_id)

    def references(self, component_id: ComponentId) -> frozenset[ComponentId]:
        """The manifests (by manifest component id) that hold a reference to ``component_id``."""
        key = component_key(component_id)
        with self._locked() as view:
            if key not in view.objects[_REFERENCES]:
                return frozenset()
            domain, value = self._open(view, _REFERENCES, key)
        cid, holders = value[0], value[1]
        if tuple(cid) != tuple(component_id) or not isinstance(holders, list):
            raise StorageError(f"TEE: reference file {domain}/{key} does not hold {component_id!r}")
        return frozenset(tuple(bytes(p) for p in holder) for holder in holders)

    def installed_manifests(self) -> dict[ComponentId, InstalledManifest]:
        with self._locked() as view:
            return dict(self._decode_record(view, key) for key in sorted(view.objects[_RECORD]))

    def commit(self, staging: StagingArea) -> None:
        """Apply a SUIT procedure's (or a TEEP Update's) changes atomically, each to its own domain."""
        with self._locked(exclusive=True) as view:
            plan = plan_commit(
                staging,
                self.rules,
                owner_of=lambda cid: view.objects[_COMPONENT].get(component_key(cid)),
                stored=lambda cid: self._stored(view, cid),
                record_owner=lambda mid: view.objects[_RECORD].get(component_key(mid)),
                reference_owner=lambda cid: view.objects[_REFERENCES].get(component_key(cid)),
            )
            changes = self._changes(view, plan)
            if changes:
                self._generations.commit(changes)
                self._refresh()

    def _stored(self, view: _View, component_id: ComponentId) -> bytes | None:
        found = self._component(view, component_id)
        return None if found is None else found[1]

    def _changes(self, view: _View, plan: CommitPlan) -> dict[str, bytes | None]:
        changes: dict[str, bytes | None] = {}
        keys: dict[str, bytes] = {}
        for domain in sorted(plan.domains):
            check_domain_name(domain)
            if domain in view.wrapped_keys:
                keys[domain] = self._domain_key(view, domain)
            else:
                keys[domain] = new = _fresh_key()
                changes[_key_path(domain)] = wrap_domain_key(self._master, domain, new)
        for cid, (domain, data) in plan.writes.items():
            key = component_key(cid)
            plain = cbor.encode([_cid(cid), bytes(data)])
            changes[_path(domain, _COMPONENT, key)] = seal_object(keys[domain], "component", domain, key, plain)
        for cid, domain in plan.unlinks.items():
            changes[_path(domain, _COMPONENT, component_key(cid))] = None
        for mid, (domain, record) in plan.records.items():
            key = component_key(mid)
            plain = cbor.encode([_cid(mid), record.sequence_number, record.digest.to_cbor()])
            changes[_path(domain, _RECORD, key)] = seal_object(keys[domain], "manifest-record", domain, key, plain)
        for cid, (domain, holders) in plan.references.items():
            key = component_key(cid)
            if not holders:
                changes[_path(domain, _REFERENCES, key)] = None
                continue
            plain = cbor.encode([_cid(cid), [_cid(h) for h in sorted(holders)]])
            changes[_path(domain, _REFERENCES, key)] = seal_object(keys[domain], "references", domain, key, plain)
        return changes

    def invoke(self, component_id: ComponentId, arguments: bytes | None) -> None:
        with self._locked() as view:
            found = self._component(view, component_id)
        if found is None:
            raise NotFoundError(f"cannot invoke a missing component {component_id!r}")
        domain, content = found
        if self.runner is not None:
            self.runner(domain, component_id, content, arguments)
        self.invocations.append(Invocation(component_id, arguments))

    # --- security domains -----------------------------------------------------------------------------------------
    def domains(self) -> list[str]:
        with self._locked() as view:
            return view.domains()

    def domain_of(self, component_id: ComponentId) -> str | None:
        with self._locked() as view:
            return view.objects[_COMPONENT].get(component_key(component_id))

    def domain(self, name: str) -> TeeDomain:
        """The API a Trusted Application of domain ``name`` gets: only its own components and data."""
        return TeeDomain(self, check_domain_name(name))

    def read_component(self, domain: str, component_id: ComponentId) -> bytes | None:
        """A component of ``domain``; IsolationError when it belongs to another domain."""
        with self._locked() as view:
            owner = view.objects[_COMPONENT].get(component_key(component_id))
            if owner is None:
                return None
            if owner != domain:
                raise IsolationError(f"domain {domain} cannot read component {component_id!r} of domain {owner}")
            found = self._component(view, component_id)
        return None if found is None else found[1]

    def components(self, domain: str) -> list[ComponentId]:
        with self._locked() as view:
            self._domain_key(view, domain)
            keys = _keys_in(view, _COMPONENT, domain)
            return [tuple(bytes(p) for p in self._open(view, _COMPONENT, k)[1][0]) for k in keys]

    def read_data(self, domain: str, name: str) -> bytes | None:
        """Personalization data ``name`` of ``domain`` (each domain has its own namespace)."""
        key = _data_key(domain, name)
        with self._locked() as view:
            self._domain_key(view, domain)
            if view.objects[_DATA].get(key) != domain:
                return None
            _owner, value = self._open(view, _DATA, key)
        if value[0] != name or not isinstance(value[1], bytes):
            raise StorageError(f"TEE: data file {domain}/{key} does not hold {name!r}")
        return value[1]

    def write_data(self, domain: str, name: str, data: bytes) -> None:
        """Store personalization data atomically in ``domain`` (which must exist: a manifest installed into it)."""
        self._change_data(domain, name, bytes(data))

    def delete_data(self, domain: str, name: str) -> None:
        self._change_data(domain, name, None)

    def _change_data(self, domain: str, name: str, data: bytes | None) -> None:
        key = _data_key(domain, name)
        with self._locked(exclusive=True) as view:
            domain_key = self._domain_key(view, domain)
            owner = view.objects[_DATA].get(key)
            sealed = None
            if data is not None:
                sealed = seal_object(domain_key, "data", domain, key, cbor.encode([name, data]))
            elif owner is None:
                return
            self._generations.commit({_path(domain, _DATA, key): sealed})
            self._refresh()

    def data_names(self, domain: str) -> list[str]:
        with self._locked() as view:
            self._domain_key(view, domain)
            return sorted(str(self._open(view, _DATA, k)[1][0]) for k in _keys_in(view, _DATA, domain))

    def summary(self) -> list[DomainSummary]:
        """Every domain with its components (id, size, SHA-256), manifest records and data names (one snapshot)."""
        out = []
        with self._locked() as view:
            for name in view.domains():
                components = []
                for key in _keys_in(view, _COMPONENT, name):
                    cid, content = self._open(view, _COMPONENT, key)[1][:2]
                    digest = hashlib.sha256(content).digest()
                    components.append(InstalledComponent(tuple(bytes(p) for p in cid), len(content), digest))
                records = tuple(self._decode_record(view, key) for key in _keys_in(view, _RECORD, name))
                data = sorted(str(self._open(view, _DATA, key)[1][0]) for key in _keys_in(view, _DATA, name))
                components.sort(key=lambda c: c.component_id)
                out.append(DomainSummary(name, tuple(components), tuple(sorted(records)), tuple(data)))
        return out


def _keys_in(view: _View, kind: str, domain: str) -> list[str]:
    return sorted(key for key, owner in view.objects[kind].items() if owner == domain)


def _cid(component_id: ComponentId) -> list[bytes]:
    return [bytes(p) for p in component_id]


def _fresh_key() -> bytes:
    return secrets.token_bytes(KEY_SIZE)


class TeeDomain:
    """One security domain's view of the TEE: its own components and personalization data, nothing else."""

    def __init__(self, tee: SoftTee, name: str) -> None:
        self.tee = tee
        self.name = name

    def read(self, component_id: ComponentId) -> bytes | None:
        return self.tee.read_component(self.name, component_id)

    def components(self) -> list[ComponentId]:
        return self.tee.components(self.name)

    def read_data(self, name: str) -> bytes | None:
        return self.tee.read_data(self.name, name)

    def write_data(self, name: str, data: bytes) -> None:
        self.tee.write_data(self.name, name, data)

    def delete_data(self, name: str) -> None:
        self.tee.delete_data(self.name, name)

    def data_names(self) -> list[str]:
        return self.tee.data_names(self.name)
