"""Encryption at rest for the software TEE: a master key, per-domain keys wrapped by it, AES-256-GCM sealed objects.

* The **master key** (32 bytes) comes from a :class:`MasterKeySource`: :class:`FileMasterKey` keeps it in a file that
  only its owner may read (created with mode 0600 on first use; a file readable by group or others is refused).
* Every **security domain** has its own random 32-byte key, stored wrapped (AES-256-GCM under the master key, the
  domain name bound as associated data), so a wrapped key copied into another domain's directory does not open.
* Every **object** (a component, a manifest record, a personalization datum) is sealed with its domain's key:
  ``MAGIC || nonce(12) || ciphertext || tag(16)``; the associated data names the kind, the domain and the file, so a
  ciphertext moved to another name or domain fails with :class:`DecryptionError` instead of being read as another.
"""

from __future__ import annotations

import os
import secrets
import stat
from pathlib import Path
from typing import Final, Protocol

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from veritee.errors import ConfigError, DecryptionError, KeyFormatError, StorageError

__all__ = [
    "KEY_SIZE",
    "FileMasterKey",
    "MasterKeySource",
    "StaticMasterKey",
    "check_private",
    "fsync_dir",
    "open_object",
    "seal_object",
    "unwrap_domain_key",
    "wrap_domain_key",
    "write_private_file",
]

KEY_SIZE: Final = 32
_NONCE_SIZE: Final = 12
_MAGIC: Final = b"VTEE1"
_TAG_SIZE: Final = 16


class MasterKeySource(Protocol):
    """Where the TEE master key comes from (a protected file, a TPM-sealed secret, ...)."""

    def load(self) -> bytes:
        """The 32-byte master key (created on first use when the source can do so)."""
        ...


class StaticMasterKey:
    """A master key given in memory (tests, or a key unsealed elsewhere)."""

    def __init__(self, key: bytes) -> None:
        if len(key) != KEY_SIZE:
            raise KeyFormatError(f"the TEE master key has {KEY_SIZE} bytes, not {len(key)}")
        self._key = bytes(key)

    def load(self) -> bytes:
        return self._key


def write_private_file(path: Path, data: bytes) -> None:
    """Create ``path`` with mode 0600 (never overwriting), write ``data`` and fsync it and its directory."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise StorageError(f"{path} already exists") from None
    except OSError as exc:
        raise StorageError(f"cannot create {path}: {exc}") from exc
    try:
        os.fchmod(fd, 0o600)  # whatever the umask
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        os.fsync(fd)
    except OSError as exc:
        raise StorageError(f"cannot write {path}: {exc}") from exc
    finally:
        os.close(fd)
    fsync_dir(path.parent)


def fsync_dir(path: Path) -> None:
    """fsync a directory so that entries created, renamed or removed in it are durable."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    except OSError as exc:
        raise StorageError(f"cannot open directory {path}: {exc}") from exc
    try:
        os.fsync(fd)
    except OSError as exc:
        raise StorageError(f"cannot fsync directory {path}: {exc}") from exc
    finally:
        os.close(fd)


def check_private(path: Path) -> None:
    """ConfigError unless ``path`` is a regular file owned by us that neither group nor others can access."""
    try:
        info = path.stat()
    except OSError as exc:
        raise StorageError(f"cannot stat {path}: {exc}") from exc
    if not stat.S_ISREG(info.st_mode):
        raise ConfigError(f"{path} is not a regular file")
    if info.st_mode & 0o077:
        raise ConfigError(f"{path} has mode {stat.S_IMODE(info.st_mode):04o}: a secret must be 0600")
    if hasattr(os, "getuid") and info.st_uid != os.getuid():
        raise ConfigError(f"{path} belongs to uid {info.st_uid}, not to this user")


class FileMasterKey:
    """The master key in a 0600 file, created with fresh random bytes the first time it is loaded."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    def load(self) -> bytes:
        if not self.path.exists():
            self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            try:
                write_private_file(self.path, secrets.token_bytes(KEY_SIZE))
            except StorageError:
                if not self.path.exists():  # not lost to a concurrent creator: a real failure
                    raise
        check_private(self.path)
        try:
            key = self.path.read_bytes()
        except OSError as exc:
            raise StorageError(f"cannot read the TEE master key {self.path}: {exc}") from exc
        if len(key) != KEY_SIZE:
            raise KeyFormatError(f"{self.path}: a TEE master key has {KEY_SIZE} bytes, not {len(key)}")
        return key


def _aad(kind: str, domain: str, name: str) -> bytes:
    return f"veritee-tee/v1/{kind}/{domain}/{name}".encode()


def seal_object(key: bytes, kind: str, domain: str, name: str, plaintext: bytes) -> bytes:
    """AES-256-GCM under ``key`` with a fresh random nonce; (kind, domain, name) is authenticated, not stored."""
    nonce = secrets.token_bytes(_NONCE_SIZE)
    return _MAGIC + nonce + AESGCM(key).encrypt(nonce, plaintext, _aad(kind, domain, name))


def open_object(key: bytes, kind: str, domain: str, name: str, sealed: bytes) -> bytes:
    """The plaintext of :func:`seal_object`; DecryptionError when the key, the place or the bytes are wrong."""
    head = len(_MAGIC) + _NONCE_SIZE
    if len(sealed) < head + _TAG_SIZE or not sealed.startswith(_MAGIC):
        raise DecryptionError(f"{kind} {domain}/{name}: not a sealed TEE object")
    nonce = sealed[len(_MAGIC) : head]
    try:
        return AESGCM(key).decrypt(nonce, sealed[head:], _aad(kind, domain, name))
    except InvalidTag:
        raise DecryptionError(f"{kind} {domain}/{name}: authentication failed (wrong key, place or content)") from None


def wrap_domain_key(master: bytes, domain: str, domain_key: bytes) -> bytes:
    return seal_object(master, "domain-key", domain, "key", domain_key)


def unwrap_domain_key(master: bytes, domain: str, wrapped: bytes) -> bytes:
    key = open_object(master, "domain-key", domain, "key", wrapped)
    if len(key) != KEY_SIZE:
        raise KeyFormatError(f"domain {domain}: the unwrapped key has {len(key)} bytes")
    return key
