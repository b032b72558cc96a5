"""swtpm for tests: one local CA and one provisioned TPM state per test session, so nodes start in milliseconds.

    from swtpm_harness import start_swtpm, start_swtpms

    def test_something(tmp_path):
        with start_swtpm(tmp_path) as tpm, TpmDevice(tpm.tcti) as dev:   # skips if swtpm is not installed
            ...

* ``start_swtpm(tmp_dir)`` clones the session template (about 10 ms): its EKs and EK certificates are the same
  as every other clone's. Pass ``unique_ek=True`` for a TPM of its own (swtpm_setup, about 0.7 s).
* ``start_swtpms(tmp_dir, n)`` starts n TPMs with distinct EKs, provisioning them in parallel.
* Every TPM chains to the same session CA (``SwtpmProcess.ca_cert_pem``). The session directory is removed at exit
  and any process a test left running is stopped (by its own PID).
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from veritee.errors import DeviceError
from veritee.tpm.swtpm import DEFAULT_SEARCH_PATH, SwtpmCa, SwtpmProcess, SwtpmTools


def require_swtpm() -> SwtpmTools:
    """The swtpm programs, or skip the calling test with the reason they are missing."""
    try:
        return SwtpmTools.find(os.environ.get("PATH", DEFAULT_SEARCH_PATH))
    except DeviceError as exc:
        pytest.skip(f"swtpm is not installed: {exc} (apt-get install swtpm swtpm-tools)")


class SwtpmSession:
    """A session-wide CA plus a lazily provisioned template state; hands out started :class:`SwtpmProcess` es."""

    def __init__(self, root: Path, tools: SwtpmTools) -> None:
        self.root = root
        self.ca = SwtpmCa(root / "ca", tools)
        self._template = root / "template" / "tpmstate"
        self._lock = threading.Lock()
        self._started: list[SwtpmProcess] = []

    def template_state(self) -> Path:
        """The provisioned state every clone copies (created on first use)."""
        with self._lock:
            if not self._template.exists():
                self.ca.provision(self._template)
        return self._template

    def start(self, tmp_dir: Path, *, unique_ek: bool = False) -> SwtpmProcess:
        clone_from = None if unique_ek else self.template_state()
        process = SwtpmProcess(tmp_dir, self.ca, clone_from=clone_from)
        with self._lock:
            self._started.append(process)
        return process.start()

    def start_many(self, tmp_dir: Path, count: int, *, unique_ek: bool = True) -> list[SwtpmProcess]:
        if not unique_ek:
            return [self.start(tmp_dir / f"node{i}") for i in range(count)]
        if not self.ca.created:
            self.template_state()  # the first provisioning creates the CA key pair: not in parallel
        with ThreadPoolExecutor(max_workers=min(8, max(1, count))) as pool:
            return list(pool.map(lambda i: self.start(tmp_dir / f"node{i}", unique_ek=True), range(count)))

    def stop_all(self) -> None:
        with self._lock:
            started, self._started = self._started, []
        for process in started:
            process.stop()


_session: SwtpmSession | None = None
_session_lock = threading.Lock()


def swtpm_session() -> SwtpmSession:
    """The per-process session (skips the test if swtpm is missing)."""
    global _session
    tools = require_swtpm()
    with _session_lock:
        if _session is None:
            root = Path(tempfile.mkdtemp(prefix="veritee-swtpm-"))
            _session = SwtpmSession(root, tools)
            atexit.register(_cleanup, _session)
        return _session


def _cleanup(session: SwtpmSession) -> None:
    session.stop_all()
    shutil.rmtree(session.root, ignore_errors=True)


def start_swtpm(tmp_dir: Path, *, unique_ek: bool = False) -> SwtpmProcess:
    """A running swtpm with its state under ``tmp_dir`` (use ``with``, or call ``.stop()``)."""
    return swtpm_session().start(tmp_dir, unique_ek=unique_ek)


def start_swtpms(tmp_dir: Path, count: int, *, unique_ek: bool = True) -> list[SwtpmProcess]:
    """``count`` running swtpm processes under ``tmp_dir/node<i>``, distinct EKs unless ``unique_ek=False``."""
    return swtpm_session().start_many(tmp_dir, count, unique_ek=unique_ek)
