"""The software TEE store: SUIT installs into security domains, isolation between them, encryption at rest, restart."""

from __future__ import annotations

import functools
import os
import shutil
from pathlib import Path

import pytest
from agent_world import APP, APP_MANIFEST, OTHER, OTHER_MANIFEST, PAYLOAD, Keys
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from veritee.errors import ConfigError, DecryptionError, KeyFormatError, NotFoundError, StorageError, VeriteeError
from veritee.service.tee import IsolationError, SoftTee
from veritee.service.tee_crypto import FileMasterKey, StaticMasterKey
from veritee.service.tee_domains import DomainRules, component_key
from veritee.suit.builder import DependencySpec
from veritee.suit.model import SuitDigest
from veritee.suit.store import InMemoryComponentStore, InstalledManifest, StagingArea
from veritee.teep.agent_store import installed_tcs, tc_list

MASTER = StaticMasterKey(bytes(range(32)))
PERSONAL = (b"TEEP-Device", b"personalization", b"app")
PERSONAL_MANIFEST = (b"TEEP-Device", b"manifests", b"app-personalization")


def installed(keys: Keys, tee: SoftTee) -> str:
    result = keys.install(tee, keys.envelope(1))
    result.raise_for_failure()
    domain = tee.domain_of(APP)
    assert domain is not None
    return domain


def all_bytes(root: Path) -> bytes:
    return b"".join(p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file())


def test_install_goes_into_the_manifests_domain(keys: Keys, tee: SoftTee) -> None:
    domain = installed(keys, tee)
    assert tee.read(APP) == PAYLOAD
    assert tee.domain_of(APP_MANIFEST) == domain == DomainRules().domain_for(APP_MANIFEST)
    assert tee.domains() == [domain]
    assert sorted(tee.components(domain)) == sorted([APP, APP_MANIFEST])
    record = tee.installed_manifest(APP_MANIFEST)
    assert record is not None and record.sequence_number == 1
    assert list(tee.installed_manifests()) == [APP_MANIFEST]
    assert [tc.manifest_id for tc in installed_tcs(tee)] == [APP_MANIFEST]  # the TEEP Agent's inventory
    assert tc_list(tee)[0].claims[14] == len(PAYLOAD)


def test_each_manifest_is_its_own_domain(keys: Keys, tee: SoftTee) -> None:
    app = installed(keys, tee)
    keys.install(tee, keys.envelope(1, b"other", component=OTHER, manifest_id=OTHER_MANIFEST)).raise_for_failure()
    other = tee.domain_of(OTHER)
    assert other is not None and other != app
    assert set(tee.components(other)) == {OTHER, OTHER_MANIFEST}
    assert set(tee.components(app)) == {APP, APP_MANIFEST}


def test_a_domain_cannot_read_another_domains_component(keys: Keys, tee: SoftTee) -> None:
    app = installed(keys, tee)
    keys.install(tee, keys.envelope(1, b"other", component=OTHER, manifest_id=OTHER_MANIFEST)).raise_for_failure()
    other = tee.domain(tee.domain_of(OTHER) or "")
    assert other.read(OTHER) == b"other"
    with pytest.raises(IsolationError):
        other.read(APP)
    with pytest.raises(IsolationError):
        tee.read_component(other.name, APP_MANIFEST)
    assert tee.domain(app).read(APP) == PAYLOAD
    assert other.read((b"no", b"such")) is None


def test_a_manifest_of_another_domain_cannot_replace_a_component(keys: Keys, tee: SoftTee) -> None:
    installed(keys, tee)
    generation = tee.generation
    evil = keys.envelope(1, b"replaced", component=APP, manifest_id=OTHER_MANIFEST)
    result = keys.install(tee, evil)
    assert isinstance(result.error, IsolationError) and not result.committed
    assert tee.read(APP) == PAYLOAD and tee.generation == generation
    assert tee.installed_manifest(OTHER_MANIFEST) is None


def test_a_manifest_of_another_domain_cannot_remove_a_component(keys: Keys, tee: SoftTee) -> None:
    installed(keys, tee)
    staging = StagingArea(tee)
    staging.unlink(APP)  # what a foreign manifest's uninstall would stage
    staging.unlink(OTHER_MANIFEST)
    with pytest.raises(IsolationError, match="no manifest of it is uninstalled"):
        tee.commit(staging)
    claimed = StagingArea(tee)  # a foreign manifest that lists APP and unlinks it
    claimed.write(OTHER_MANIFEST, keys.envelope(1, b"x", component=APP, manifest_id=OTHER_MANIFEST))
    claimed.record_manifest(OTHER_MANIFEST, InstalledManifest(1, SuitDigest.compute(b"x")))
    claimed.unlink(APP)
    with pytest.raises(IsolationError, match="cannot remove"):
        tee.commit(claimed)
    assert tee.read(APP) == PAYLOAD


def test_unattributable_writes_are_refused(keys: Keys, tee: SoftTee) -> None:
    staging = StagingArea(tee)
    staging.write(APP, b"from nowhere")
    with pytest.raises(IsolationError, match="no manifest"):
        tee.commit(staging)
    no_id = keys.envelope(1, manifest_id=None)  # a manifest without manifest-component-id: no domain to go to
    assert isinstance(keys.install(tee, no_id).error, IsolationError)
    assert tee.generation == 0


def test_uninstall_removes_the_domains_components(keys: Keys, tee: SoftTee) -> None:
    installed(keys, tee)
    result = keys.uninstall(tee, keys.envelope(1))
    result.raise_for_failure()
    assert tee.read(APP) is None and tee.read(APP_MANIFEST) is None
    assert tee.installed_manifest(APP_MANIFEST) is not None  # anti-rollback record stays
    assert keys.install(tee, keys.envelope(1)).error is not None  # rollback to 1 refused
    keys.install(tee, keys.envelope(2, b"v2")).raise_for_failure()
    assert tee.read(APP) == b"v2"


def test_a_dependency_is_a_domain_of_its_own(keys: Keys, tee: SoftTee) -> None:
    ta = keys.envelope(1)
    personalization = keys.envelope(
        1,
        b"personal data",
        component=PERSONAL,
        manifest_id=PERSONAL_MANIFEST,
        dependencies=(DependencySpec(ta, APP_MANIFEST, integrated_key="#ta"),),
    )
    keys.install(tee, personalization).raise_for_failure()
    assert tee.read(APP) == PAYLOAD and tee.read(PERSONAL) == b"personal data"
    assert tee.domain_of(APP) == DomainRules().domain_for(APP_MANIFEST)
    assert tee.domain_of(PERSONAL) == DomainRules().domain_for(PERSONAL_MANIFEST)
    assert tee.domain_of(APP) != tee.domain_of(PERSONAL)
    assert set(tee.installed_manifests()) == {APP_MANIFEST, PERSONAL_MANIFEST}
    keys.uninstall(tee, personalization).raise_for_failure()  # the dependent's uninstall runs the dependency's
    assert tee.read(PERSONAL) is None and tee.read(APP) is None


def test_rules_can_put_a_ta_and_its_personalization_in_one_domain(keys: Keys, tmp_path: Path) -> None:
    rules = DomainRules(((APP_MANIFEST, "app"), ((b"TEEP-Device", b"manifests", b"app-personalization"), "app")))
    tee = SoftTee(tmp_path / "tee", MASTER, rules=rules)
    ta = keys.envelope(1)
    personalization = keys.envelope(
        1,
        b"personal",
        component=PERSONAL,
        manifest_id=PERSONAL_MANIFEST,
        dependencies=(DependencySpec(ta, APP_MANIFEST, integrated_key="#ta"),),
    )
    keys.install(tee, personalization).raise_for_failure()
    assert tee.domains() == ["app"] and tee.domain("app").read(PERSONAL) == b"personal"
    with pytest.raises(ConfigError):
        DomainRules(((APP_MANIFEST, "../escape"),))


def test_personalization_data_is_per_domain(keys: Keys, tee: SoftTee) -> None:
    app = tee.domain(installed(keys, tee))
    keys.install(tee, keys.envelope(1, b"other", component=OTHER, manifest_id=OTHER_MANIFEST)).raise_for_failure()
    other = tee.domain(tee.domain_of(OTHER) or "")
    app.write_data("config", b"app secret")
    other.write_data("config", b"other secret")
    assert app.read_data("config") == b"app secret" and other.read_data("config") == b"other secret"
    assert app.data_names() == ["config"]
    other.delete_data("config")
    assert other.read_data("config") is None and app.read_data("config") == b"app secret"
    with pytest.raises(NotFoundError):
        tee.write_data("no-such-domain", "config", b"x")


def test_nothing_is_stored_in_plaintext(keys: Keys, tmp_path: Path) -> None:
    tee = SoftTee(tmp_path / "tee", FileMasterKey(tmp_path / "master.key"))
    app = tee.domain(installed(keys, tee))
    app.write_data("personal", b"PERSONALIZATION-SECRET-XYZ")
    stored = all_bytes(tmp_path / "tee")
    assert stored  # something was written
    for secret in (PAYLOAD, b"PERSONALIZATION-SECRET-XYZ", b"SecureFS", b"TEEP-Device", APP[2]):
        assert secret not in stored
    master = (tmp_path / "master.key").read_bytes()
    assert master not in stored


def test_restart_reads_everything_back(keys: Keys, tmp_path: Path) -> None:
    tee = SoftTee(tmp_path / "tee", FileMasterKey(tmp_path / "master.key"))
    domain = installed(keys, tee)
    tee.write_data(domain, "d", b"data")
    again = SoftTee(tmp_path / "tee", FileMasterKey(tmp_path / "master.key"))
    assert again.read(APP) == PAYLOAD and again.read_data(domain, "d") == b"data"
    assert again.installed_manifests() == tee.installed_manifests()
    assert again.generation == tee.generation == 2


def test_a_wrong_master_key_reads_nothing(keys: Keys, tmp_path: Path) -> None:
    installed(keys, SoftTee(tmp_path / "tee", MASTER))
    with pytest.raises(DecryptionError):
        SoftTee(tmp_path / "tee", StaticMasterKey(bytes(32)))


def test_ciphertexts_and_keys_moved_between_domains_do_not_open(keys: Keys, tee: SoftTee, tmp_path: Path) -> None:
    app = installed(keys, tee)
    keys.install(tee, keys.envelope(1, b"other", component=OTHER, manifest_id=OTHER_MANIFEST)).raise_for_failure()
    other = str(tee.domain_of(OTHER))
    generation = tmp_path / "tee" / f"gen-{tee.generation:08d}"

    def replace(target: Path, source: Path) -> None:
        data = source.read_bytes()
        target.unlink()  # files are shared between generations by hard links: never write in place
        target.write_bytes(data)

    other_file = generation / f"{other}~c~{component_key(OTHER)}"
    app_file = generation / f"{app}~c~{component_key(APP)}"
    replace(other_file, app_file)  # domain A's sealed component under domain B's name for OTHER
    reopened = SoftTee(tmp_path / "tee", MASTER)
    with pytest.raises(DecryptionError):
        reopened.read(OTHER)
    assert reopened.read(APP) == PAYLOAD
    replace(generation / f"{other}~key", generation / f"{app}~key")  # domain A's wrapped key as domain B's
    with pytest.raises(DecryptionError):
        SoftTee(tmp_path / "tee", MASTER)


def test_the_same_object_in_two_domains_is_detected(keys: Keys, tee: SoftTee, tmp_path: Path) -> None:
    app = installed(keys, tee)
    keys.install(tee, keys.envelope(1, b"other", component=OTHER, manifest_id=OTHER_MANIFEST)).raise_for_failure()
    generation = tmp_path / "tee" / f"gen-{tee.generation:08d}"
    key = component_key(APP)
    os.link(generation / f"{app}~c~{key}", generation / f"{tee.domain_of(OTHER)}~c~{key}")
    with pytest.raises(StorageError, match="two domains"):
        SoftTee(tmp_path / "tee", MASTER)


def test_tampered_ciphertext_is_a_decryption_error(keys: Keys, tee: SoftTee, tmp_path: Path) -> None:
    domain = installed(keys, tee)
    generation = tmp_path / "tee" / f"gen-{tee.generation:08d}"
    for path in generation.glob(f"{domain}~c~*"):
        data = bytearray(path.read_bytes())
        data[-1] ^= 1
        path.unlink()
        path.write_bytes(bytes(data))
    with pytest.raises(DecryptionError):
        SoftTee(tmp_path / "tee", MASTER).read(APP)


def test_master_key_file_is_private_and_checked(tmp_path: Path) -> None:
    path = tmp_path / "keys" / "master.key"
    key = FileMasterKey(path).load()
    assert len(key) == 32 and path.stat().st_mode & 0o777 == 0o600
    assert FileMasterKey(path).load() == key
    path.chmod(0o644)
    with pytest.raises(ConfigError, match="0600"):
        FileMasterKey(path).load()
    path.chmod(0o600)
    path.write_bytes(b"short")
    with pytest.raises(KeyFormatError):
        FileMasterKey(path).load()


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A TEE with APP installed, copied by the property test (installing costs more than copying)."""
    root = tmp_path_factory.mktemp("template") / "tee"
    keys = Keys()
    keys.install(SoftTee(root, MASTER), keys.envelope(1)).raise_for_failure()
    return root


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(garbage=st.binary(max_size=200), which=st.integers(min_value=0, max_value=10))
def test_random_file_contents_give_typed_errors(
    template: Path, tmp_path_factory: pytest.TempPathFactory, garbage: bytes, which: int
) -> None:
    root = tmp_path_factory.mktemp("tee") / "tee"
    shutil.copytree(template, root)
    files = sorted(p for p in root.rglob("*") if p.is_file() and p.name != "lock")
    victim = files[which % len(files)]
    victim.write_bytes(garbage)
    try:
        reopened = SoftTee(root, MASTER)
        content = reopened.read(APP)
        reopened.installed_manifests()
    except VeriteeError:
        return
    assert content == PAYLOAD  # whatever was damaged, what is read is never something else


def test_shared_dependencies_are_reference_counted_across_restarts(keys: Keys, tmp_path: Path) -> None:
    ta = keys.envelope(1)

    def personalization(name: bytes) -> bytes:
        return keys.envelope(
            1,
            b"data of " + name,
            component=(b"TEEP-Device", b"personalization", name),
            manifest_id=(b"TEEP-Device", b"manifests", name),
            dependencies=(DependencySpec(ta, APP_MANIFEST, integrated_key="#ta"),),
        )

    first, second = personalization(b"first"), personalization(b"second")
    tee = SoftTee(tmp_path / "tee", MASTER)
    keys.install(tee, first).raise_for_failure()
    keys.install(tee, second).raise_for_failure()
    holders = {(b"TEEP-Device", b"manifests", b"first"), (b"TEEP-Device", b"manifests", b"second")}
    restarted = SoftTee(tmp_path / "tee", MASTER)
    assert restarted.references(APP_MANIFEST) == holders
    assert restarted.domain_of(APP_MANIFEST) == DomainRules().domain_for(APP_MANIFEST)
    keys.uninstall(restarted, first).raise_for_failure()
    again = SoftTee(tmp_path / "tee", MASTER)
    assert again.read(APP) == PAYLOAD  # still needed by the second
    assert again.references(APP_MANIFEST) == {(b"TEEP-Device", b"manifests", b"second")}
    keys.uninstall(again, second).raise_for_failure()
    assert again.read(APP) is None and again.references(APP_MANIFEST) == frozenset()


DIFFERENTIAL_KEYS = Keys()
TCS = [(APP, APP_MANIFEST), (OTHER, OTHER_MANIFEST), ((b"TEEP-Device", b"SecureFS", b"third"), (b"m", b"third"))]


@functools.cache
def tc_envelope(index: int, sequence: int) -> bytes:
    component, manifest_id = TCS[index]
    return DIFFERENTIAL_KEYS.envelope(
        sequence, b"v%d of %d" % (sequence, index), component=component, manifest_id=manifest_id
    )


@settings(max_examples=15, deadline=None)
@given(
    operations=st.lists(
        st.tuples(st.booleans(), st.integers(min_value=0, max_value=2), st.integers(min_value=1, max_value=3)),
        max_size=6,
    )
)
def test_it_behaves_like_the_in_memory_store(
    tmp_path_factory: pytest.TempPathFactory, operations: list[tuple[bool, int, int]]
) -> None:
    """Differential: the same SUIT procedures on the software TEE and on the reference in-memory store."""
    root = tmp_path_factory.mktemp("tee")
    tee, reference = SoftTee(root, MASTER), InMemoryComponentStore()
    for install, index, sequence in operations:
        envelope = tc_envelope(index, sequence)
        run = DIFFERENTIAL_KEYS.install if install else DIFFERENTIAL_KEYS.uninstall
        assert run(tee, envelope).ok == run(reference, envelope).ok
    restarted = SoftTee(root, MASTER)
    for component, manifest_id in TCS:
        for cid in (component, manifest_id):
            assert restarted.read(cid) == reference.read(cid)
            assert restarted.references(cid) == reference.references(cid)
    assert restarted.installed_manifests() == reference.manifests
