"""swtpm process management: provisioning under our own directories, start/stop, many nodes, restarts."""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509
from tpm_device_checks import parse_quote

import swtpm_harness
from swtpm_harness import require_swtpm, start_swtpm, start_swtpms, swtpm_session
from veritee.errors import ConfigError, DeviceError
from veritee.tpm import swtpm as swtpm_module
from veritee.tpm.credential import make_credential
from veritee.tpm.device import AkAlg, EkKind, TpmDevice
from veritee.tpm.swtpm import SwtpmCa, SwtpmProcess, SwtpmTools

pytestmark = pytest.mark.swtpm


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def _running(process: SwtpmProcess) -> bool:
    return process.running  # a call, so the type checker does not carry an earlier narrowing over


def _port_free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def test_start_answers_and_stop_leaves_no_process(tmp_path: Path) -> None:
    swtpm_session().template_state()  # provisioned once per session; time only the clone's start
    process = start_swtpm(tmp_path)
    pid, port = process.pid, process.port
    try:
        assert process.running and _alive(pid)
        assert Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[:2] == [bytes(process.ca.tools.swtpm), b"socket"]
        assert process.tcti == f"swtpm:host=127.0.0.1,port={port}"
        with TpmDevice(process.tcti) as tpm:
            assert tpm.pcr_read({"sha256": [0]})["sha256"][0] == b"\x00" * 32
    finally:
        process.stop()
    assert not _running(process) and not _alive(pid)
    assert _port_free(port) and _port_free(port + 1)
    process.stop()  # idempotent
    with pytest.raises(DeviceError, match="not running"):
        _ = process.tcti
    with pytest.raises(DeviceError, match="not running"):
        _ = process.pid


def test_several_nodes_at_once_have_their_own_ports_and_eks(tmp_path: Path) -> None:
    nodes = start_swtpms(tmp_path, 3)
    pids = [n.pid for n in nodes]
    try:
        assert len({n.port for n in nodes}) == 3
        assert len({n.state_dir for n in nodes}) == 3
        ca = x509.load_pem_x509_certificate(swtpm_session().ca.ca_cert_pem)
        certs = []
        for n in nodes:
            with TpmDevice(n.tcti) as tpm:
                der = tpm.read_ek_certificate(EkKind.RSA)
                tpm.pcr_extend(16, {"sha256": bytes(32)})
            x509.load_der_x509_certificate(der).verify_directly_issued_by(ca)
            certs.append(der)
        assert len(set(certs)) == 3  # distinct endorsement identities, one CA
    finally:
        for n in nodes:
            n.stop()
    assert not any(_alive(pid) for pid in pids)


def test_clones_share_the_template_identity(tmp_path: Path) -> None:
    with (
        start_swtpm(tmp_path / "a") as a,
        start_swtpm(tmp_path / "b") as b,
        start_swtpm(tmp_path / "c", unique_ek=True) as c,
    ):
        certs = []
        for node in (a, b, c):
            with TpmDevice(node.tcti) as tpm:
                certs.append(tpm.read_ek_certificate(EkKind.ECC))
        assert certs[0] == certs[1] != certs[2]


def test_restart_keeps_the_state_like_a_reboot(tmp_path: Path) -> None:
    process = SwtpmProcess(tmp_path, swtpm_session().ca, clone_from=swtpm_session().template_state())
    with process, TpmDevice(process.tcti) as tpm:
        ek = tpm.create_ek(EkKind.RSA)
        ak = tpm.create_ak(AkAlg.ECC_P256_ECDSA_SHA256, parent=EkKind.ECC)
        tpm.pcr_extend(16, {"sha256": b"\x01" * 32})
        first = parse_quote(tpm.quote(ak, {"sha256": [16]}, b"").attest)
    with process, TpmDevice(process.tcti) as tpm:
        assert tpm.create_ek(EkKind.RSA) == ek
        quote = tpm.quote(ak, {"sha256": [16]}, b"")  # the AK blob still loads after the "reboot"
        assert quote.pcrs["sha256"][16] == b"\x00" * 32
        assert parse_quote(quote.attest).reset_count == first.reset_count + 1


def _snapshot() -> dict[str, tuple[float, int]]:
    """Every file swtpm_setup/swtpm_localca would touch by default: /etc/swtpm*, their statedir, ~/.config/swtpm*."""
    paths = [*Path("/etc").glob("swtpm*"), *(Path.home() / ".config").glob("swtpm*"), Path("/var/lib/swtpm-localca")]
    out: dict[str, tuple[float, int]] = {}
    for root in paths:
        for p in [root, *root.rglob("*")] if root.is_dir() else [root]:
            st = p.lstat()
            out[str(p)] = (st.st_mtime, st.st_size)
    return out


def test_a_fresh_ca_writes_only_under_its_own_directory(tmp_path: Path) -> None:
    tools = require_swtpm()
    before = _snapshot()
    ca = SwtpmCa(tmp_path / "ca", tools)
    with pytest.raises(DeviceError, match="not been created"):
        _ = ca.ca_cert_pem
    with SwtpmProcess(tmp_path / "node", ca) as node, TpmDevice(node.tcti) as tpm:
        cert = x509.load_der_x509_certificate(tpm.read_ek_certificate(EkKind.ECC))
        cert.verify_directly_issued_by(x509.load_pem_x509_certificate(node.ca_cert_pem))
    assert _snapshot() == before
    for config in ("swtpm_setup.conf", "swtpm-localca.conf"):
        for line in (tmp_path / "ca" / config).read_text().splitlines():
            value = line.split("=", 1)[1].strip()
            if value.startswith("/"):
                assert value.startswith(str(tmp_path)) or value == str(tools.swtpm_localca), line
    assert list((tmp_path / "ca" / "tmp").iterdir()) == []  # swtpm_setup's temporary directories were removed


def test_start_retries_when_the_port_pair_is_taken(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real = swtpm_module._port_pair
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        taken = squatter.getsockname()[1]
        ports = iter([taken])
        monkeypatch.setattr(swtpm_module, "_port_pair", lambda host: next(ports, None) or real(host))
        with start_swtpm(tmp_path) as node:
            assert node.port != taken
        assert "in use" in node.log_path.read_text()


def test_a_broken_state_fails_with_the_log(tmp_path: Path) -> None:
    session = swtpm_session()
    (tmp_path / "tpmstate").mkdir()
    (tmp_path / "tpmstate" / "tpm2-00.permall").write_bytes(b"not a TPM state" * 10)
    process = SwtpmProcess(tmp_path, session.ca)
    with pytest.raises(DeviceError, match="libtpms"):
        process.start()
    assert not process.running


def test_configuration_errors(tmp_path: Path) -> None:
    session = swtpm_session()
    with pytest.raises(DeviceError, match="swtpm_setup"):
        SwtpmTools.find(str(tmp_path))
    with pytest.raises(ConfigError):
        SwtpmCa(tmp_path / "x", session.ca.tools, pcr_banks=[])
    with pytest.raises(ConfigError):
        SwtpmCa(tmp_path / "x", session.ca.tools, pcr_banks=["sha256", "../etc"])
    with pytest.raises(ConfigError, match="already holds"):
        session.ca.provision(session.template_state())
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigError, match="no provisioned"):
        SwtpmProcess(tmp_path / "n", session.ca, clone_from=tmp_path / "empty").start()


@pytest.fixture
def no_swtpm_on_path(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setattr(swtpm_harness, "DEFAULT_SEARCH_PATH", str(tmp_path))
    yield


@pytest.mark.usefixtures("no_swtpm_on_path")
def test_harness_skips_without_swtpm() -> None:
    with pytest.raises(pytest.skip.Exception, match="swtpm is not installed"):
        require_swtpm()


def test_power_cycle_while_connected_reloads_keys(tmp_path: Path) -> None:
    """A TPM Reset under an open device: saved EK/AK contexts become invalid and are re-created transparently."""
    with start_swtpm(tmp_path) as node, TpmDevice(node.tcti) as tpm:
        ak = tpm.create_ak(AkAlg.RSA2048_RSASSA_SHA256, parent=EkKind.RSA)
        tpm.pcr_extend(16, {"sha256": b"\x01" * 32})
        before = tpm.quote(ak, {"sha256": [16]}, b"before")  # leaves saved contexts of the EK and the AK
        node.power_cycle()
        with pytest.raises(DeviceError, match="TPM2_PCR_Read failed: response code 0x00000100"):
            tpm.pcr_read({"sha256": [16]})  # TPM_RC_INITIALIZE: no TPM2_Startup yet
        tpm.startup()
        after = tpm.quote(ak, {"sha256": [16]}, b"after")
        assert after.pcrs["sha256"][16] == b"\x00" * 32 != before.pcrs["sha256"][16]
        assert parse_quote(after.attest).reset_count == parse_quote(before.attest).reset_count + 1
        assert tpm.open_handles() == []
        secret = b"still the same EK"
        blob, encrypted = make_credential(tpm.create_ek(EkKind.RSA), ak.name, secret)
        assert tpm.activate_credential(ak, EkKind.RSA, blob, encrypted) == secret
