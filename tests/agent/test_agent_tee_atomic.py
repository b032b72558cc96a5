"""Atomic installs in the software TEE: a failure or a crash at every step of a commit leaves the previous version
(or, once the pointer switched, the complete new one) intact and readable after a restart."""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from agent_world import APP, APP_MANIFEST, OTHER, OTHER_MANIFEST, PAYLOAD, Keys
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from veritee.errors import StorageError
from veritee.service.tee import SoftTee
from veritee.service.tee_agent import public_pem
from veritee.service.tee_crypto import StaticMasterKey
from veritee.service.tee_generations import CommitStep
from veritee.teep.agent import TeepAgent
from veritee.teep.codes import ErrorCode
from veritee.teep.events import ErrorSent, EvidenceReceived, UpdateFailed
from veritee.teep.tam import TamSession

MASTER = StaticMasterKey(bytes(range(32)))
BEFORE_SWITCH = (CommitStep.STAGED, CommitStep.SYNCED, CommitStep.POINTER_WRITTEN)
AFTER_SWITCH = (CommitStep.SWITCHED, CommitStep.CLEANED)


class InjectedCrash(StorageError):
    """The failure a test injects at one commit step."""


def crash_at(step: CommitStep) -> Callable[[CommitStep], None]:
    def fault(current: CommitStep) -> None:
        if current is step:
            raise InjectedCrash(f"injected at {step.value}")

    return fault


def v1_installed(keys: Keys, root: Path) -> None:
    keys.install(SoftTee(root, MASTER), keys.envelope(1)).raise_for_failure()


@pytest.mark.parametrize("step", list(CommitStep))
def test_an_injected_failure_at_each_step(keys: Keys, tmp_path: Path, step: CommitStep) -> None:
    root = tmp_path / "tee"
    v1_installed(keys, root)
    crashing = SoftTee(root, MASTER, fault=crash_at(step))
    result = keys.install(crashing, keys.envelope(2, b"version 2"))
    assert isinstance(result.error, InjectedCrash)
    restarted = SoftTee(root, MASTER)
    record = restarted.installed_manifest(APP_MANIFEST)
    assert record is not None
    if step in BEFORE_SWITCH:
        assert restarted.read(APP) == PAYLOAD and record.sequence_number == 1 and restarted.generation == 1
        assert restarted.recovered  # the half-made generation (and pointer) were removed
    else:
        assert restarted.read(APP) == b"version 2" and record.sequence_number == 2 and restarted.generation == 2
    assert sorted(p.name for p in root.iterdir()) == ["CURRENT", f"gen-{restarted.generation:08d}", "lock"]
    keys.install(restarted, keys.envelope(3, b"version 3")).raise_for_failure()  # and it keeps working
    assert SoftTee(root, MASTER).read(APP) == b"version 3"


CHILD = textwrap.dedent(
    """
    import os, signal, sys
    from pathlib import Path
    from veritee.cose import CoseKey
    from veritee.service.tee import SoftTee
    from veritee.service.tee_crypto import StaticMasterKey
    from veritee.suit.processor import Procedure, ProcessorConfig, process

    root, step, envelope, signer = sys.argv[1:]

    def fault(current):
        if current.value == step:
            os.kill(os.getpid(), signal.SIGKILL)

    tee = SoftTee(Path(root), StaticMasterKey(bytes(range(32))), fault=fault)
    config = ProcessorConfig(trust_anchors=(CoseKey.from_pem(Path(signer).read_bytes()),))
    process(Path(envelope).read_bytes(), Procedure.UPDATE, config=config, store=tee).raise_for_failure()
    print("committed")
    """
)


@pytest.mark.parametrize("step", [CommitStep.STAGED, CommitStep.POINTER_WRITTEN, CommitStep.SWITCHED])
def test_a_process_killed_mid_install(keys: Keys, tmp_path: Path, step: CommitStep) -> None:
    root = tmp_path / "tee"
    v1_installed(keys, root)
    envelope, signer = tmp_path / "v2.suit", tmp_path / "signer.pem"
    envelope.write_bytes(keys.envelope(2, b"version 2"))
    signer.write_bytes(public_pem(keys.tc_signer))
    child = subprocess.run(
        [sys.executable, "-c", CHILD, str(root), step.value, str(envelope), str(signer)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert child.returncode == -signal.SIGKILL, child.stderr
    assert "committed" not in child.stdout
    restarted = SoftTee(root, MASTER)
    expected = PAYLOAD if step in BEFORE_SWITCH else b"version 2"
    assert restarted.read(APP) == expected
    assert restarted.recovered  # what the killed commit left behind is gone
    assert restarted.read(APP_MANIFEST) is not None


def test_the_same_commit_without_a_crash_in_a_subprocess(keys: Keys, tmp_path: Path) -> None:
    """The child script commits when nobody kills it (so the kills above are what stops it)."""
    root = tmp_path / "tee"
    v1_installed(keys, root)
    envelope, signer = tmp_path / "v2.suit", tmp_path / "signer.pem"
    envelope.write_bytes(keys.envelope(2, b"version 2"))
    signer.write_bytes(public_pem(keys.tc_signer))
    child = subprocess.run(
        [sys.executable, "-c", CHILD, str(root), "never", str(envelope), str(signer)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert child.returncode == 0 and "committed" in child.stdout, child.stderr
    assert SoftTee(root, MASTER).read(APP) == b"version 2"


def test_a_teep_update_is_all_or_nothing_when_the_commit_fails(keys: Keys, tmp_path: Path) -> None:
    root = tmp_path / "tee"
    v1_installed(keys, root)
    tee = SoftTee(root, MASTER, fault=crash_at(CommitStep.POINTER_WRITTEN))
    agent, tam = TeepAgent(keys.agent_config(), tee), TamSession(keys.tam_config())
    now = time.time()
    _events, reply = agent.receive(tam.start(now), now)
    assert reply is not None
    evidence = next(e for e in tam.receive(reply, now) if isinstance(e, EvidenceReceived))
    assert evidence.challenge is not None
    tam.attestation_result(True)
    manifests = [
        keys.envelope(2, b"version 2"),
        keys.envelope(1, b"other", component=OTHER, manifest_id=OTHER_MANIFEST),
    ]
    events, reply = agent.receive(tam.send_update(manifests, [], now), now)
    assert [e.code for e in events if isinstance(e, ErrorSent)] == [ErrorCode.MANIFEST_PROCESSING_FAILED]
    assert any(isinstance(e, UpdateFailed) and "injected" in e.reason for e in events)
    restarted = SoftTee(root, MASTER)
    assert restarted.read(APP) == PAYLOAD and restarted.read(OTHER) is None
    assert restarted.installed_manifest(OTHER_MANIFEST) is None


def test_leftovers_of_any_shape_are_recovered(keys: Keys, tmp_path: Path) -> None:
    root = tmp_path / "tee"
    v1_installed(keys, root)
    (root / "gen-00000002.tmp").mkdir()
    (root / "gen-00000002.tmp" / "junk").write_bytes(b"x")
    (root / "gen-00000007").mkdir()
    (root / "CURRENT.tmp").write_text("gen-00000007\n")
    restarted = SoftTee(root, MASTER)
    assert sorted(restarted.recovered) == ["CURRENT.tmp", "gen-00000002.tmp", "gen-00000007"]
    assert restarted.read(APP) == PAYLOAD


@pytest.mark.parametrize("pointer", ["gen-00000009\n", "garbage", ""])
def test_a_corrupt_pointer_is_a_storage_error(keys: Keys, tmp_path: Path, pointer: str) -> None:
    root = tmp_path / "tee"
    v1_installed(keys, root)
    (root / "CURRENT").write_text(pointer)
    with pytest.raises(StorageError):
        SoftTee(root, MASTER)


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("template") / "tee"
    v1_installed(Keys(), root)
    return root


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    operations=st.lists(
        st.tuples(
            st.sampled_from(["a", "b", "c"]),
            st.one_of(st.none(), st.binary(max_size=40)),
            st.one_of(st.none(), st.sampled_from(list(CommitStep))),
        ),
        max_size=8,
    )
)
def test_data_writes_with_random_crashes_match_a_model(
    template: Path,
    tmp_path_factory: pytest.TempPathFactory,
    operations: list[tuple[str, bytes | None, CommitStep | None]],
) -> None:
    root = tmp_path_factory.mktemp("tee") / "tee"
    shutil.copytree(template, root)
    domain = str(SoftTee(root, MASTER).domain_of(APP))
    model: dict[str, bytes] = {}
    for name, value, crash in operations:
        tee = SoftTee(root, MASTER, fault=crash_at(crash) if crash is not None else None)
        try:
            if value is None:
                tee.delete_data(domain, name)
            else:
                tee.write_data(domain, name, value)
        except InjectedCrash:
            if crash in BEFORE_SWITCH:
                continue  # the change did not happen
        if value is None:
            model.pop(name, None)
        else:
            model[name] = value
    restarted = SoftTee(root, MASTER)
    assert {n: restarted.read_data(domain, n) for n in restarted.data_names(domain)} == model
    assert restarted.read(APP) == PAYLOAD
