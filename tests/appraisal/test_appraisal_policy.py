"""Policy documents (our format), Keylime imports, compilation: strict, typed errors, exact round trips."""

from __future__ import annotations

import base64
import contextlib
import copy
import json
import uuid
from typing import Any

import pytest
from appraisal_support import bundle_files
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from hypothesis import given, settings
from hypothesis import strategies as st

from veritee.appraisal.policy import (
    BootPolicy,
    EfiSignature,
    FirmwareSpec,
    KernelSpec,
    PolicySet,
    RuntimePolicy,
    SigningKey,
    compile_policy,
    dump_policy,
    export_policy,
    ima_keyid,
    import_keylime_refstate,
    import_keylime_runtime_policy,
    load_policy,
    parse_policy,
)
from veritee.errors import PolicyError
from veritee.tpm.alg import HashAlg

SHA = {HashAlg.SHA256: bytes(range(32))}


def _full_policy() -> PolicySet:
    key = ec.generate_private_key(ec.SECP256R1()).public_key()
    der = key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    owner = str(uuid.UUID(int=5))
    return PolicySet(
        name="full",
        boot=BootPolicy(
            secure_boot=True,
            pk=(EfiSignature(owner, b"pk"),),
            kek=(EfiSignature(owner, b"kek"),),
            db=(EfiSignature(owner, b"db1"), EfiSignature(owner, b"db2")),
            dbx=(EfiSignature(owner, bytes(32)),),
            firmware=(FirmwareSpec(scrtm=SHA, platform_firmware=(SHA, {HashAlg.SHA1: bytes(20)})),),
            mok=(SHA,),
            mokx=None,
            kernels=(KernelSpec(shim=bytes(32), grub=None, kernel=bytes(32), initrd=bytes(32), cmdline=r"ro quiet"),),
            expected_pcrs={HashAlg.SHA256: {0: bytes(32), 7: bytes(range(32))}},
        ),
        runtime=RuntimePolicy(
            digests={"/bin/sh": (bytes(20), bytes(32)), "boot_aggregate": (bytes(20),)},
            excludes=("/tmp/.*",),
            keyrings={".ima": (bytes(32),)},
            ignored_keyrings=(".builtin_trusted_keys",),
            buffers={"kernel_version": (bytes(32),)},
            signing_keys=(SigningKey(".ima", ima_keyid(key), der),),
            log_hash_alg=HashAlg.SHA1,
        ),
    )


def test_document_round_trip() -> None:
    policy = _full_policy()
    text = dump_policy(policy)
    assert load_policy(text) == policy
    assert load_policy(text.encode()) == policy
    assert parse_policy(json.loads(text)) == policy
    assert export_policy(policy.boot, policy.runtime, name="full") == json.loads(text)


def _document() -> dict[str, Any]:
    policy = _full_policy()
    return export_policy(policy.boot, policy.runtime, name="full")


@pytest.mark.parametrize(
    ("path", "value", "message"),
    [
        (("format",), "keylime", "policy.format"),
        (("version",), 2, "policy.version"),
        (("version",), True, "policy.version"),
        (("extra",), 1, "unknown member"),
        (("boot", "secure_boot"), "yes", "boot.secure_boot"),
        (("boot", "pk", 0, "owner"), "not-a-guid", "boot.pk[0].owner"),
        (("boot", "pk", 0, "data"), "xyz", "boot.pk[0].data"),
        (("boot", "kernels", 0, "shim"), "00", "boot.kernels[0].shim"),
        (("boot", "kernels", 0, "cmdline"), "(", "boot.kernels[0].cmdline"),
        (("boot", "kernels", 0, "bogus"), 1, "unknown member"),
        (("boot", "firmware", 0, "scrtm"), {"md5": "00"}, "boot.firmware[0].scrtm.md5"),
        (("boot", "pcrs", "sha256", "24"), "00" * 32, "PCR index"),
        (("runtime", "digests", "/bin/sh"), "00", "runtime.digests"),
        (("runtime", "excludes", 0), "[", "runtime.excludes[0]"),
        (("runtime", "log_hash_alg"), "md5", "runtime.log_hash_alg"),
        (("runtime", "signing_keys", 0, "keyid"), "0011", "runtime.signing_keys[0].keyid"),
        (("runtime", "signing_keys", 0, "public_key"), "!!", "runtime.signing_keys[0].public_key"),
    ],
)
def test_schema_errors_name_the_member(path: tuple[Any, ...], value: Any, message: str) -> None:
    document = _document()
    target: Any = document
    for step in path[:-1]:
        target = target[step]
    target[path[-1]] = value
    with pytest.raises(PolicyError, match=message.replace("[", r"\[").replace("]", r"\]").replace(".", r"\.")):
        parse_policy(document)


def test_bad_keys_fail_at_compile_time() -> None:
    document = _document()
    ed = ed25519.Ed25519PrivateKey.generate().public_key()
    der = ed.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    document["runtime"]["signing_keys"][0]["public_key"] = base64.b64encode(der).decode()
    policy = parse_policy(document)
    with pytest.raises(PolicyError, match="RSA or EC"):
        compile_policy(policy.boot, policy.runtime)
    document["runtime"]["signing_keys"][0]["public_key"] = base64.b64encode(b"junk").decode()
    policy = parse_policy(document)
    with pytest.raises(PolicyError, match="DER"):
        compile_policy(policy.boot, policy.runtime)


def test_not_json() -> None:
    with pytest.raises(PolicyError, match="not JSON"):
        load_policy("{")
    with pytest.raises(PolicyError, match="not JSON"):
        load_policy(b"\xff\xfe")


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=8),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=8), children, max_size=3),
    max_leaves=12,
)


@settings(max_examples=150, deadline=None)
@given(value=json_values)
def test_random_documents_raise_only_policy_errors(value: Any) -> None:
    for loader in (parse_policy, import_keylime_runtime_policy, import_keylime_refstate):
        with contextlib.suppress(PolicyError):
            loader(value)


@settings(max_examples=100, deadline=None)
@given(data=st.data())
def test_mutated_keylime_policies_raise_only_policy_errors(data: st.DataObject) -> None:
    files = bundle_files()
    for name, loader in (
        ("runtime_policy.json", import_keylime_runtime_policy),
        ("mb_refstate.json", import_keylime_refstate),
    ):
        document = json.loads(files[name])
        key = data.draw(st.sampled_from(sorted(document)))
        document[key] = data.draw(json_values)
        with contextlib.suppress(PolicyError):
            loader(json.dumps(document))


# --- Keylime ------------------------------------------------------------------------------------------------------
def test_keylime_runtime_policy_import() -> None:
    files = bundle_files()
    policy = import_keylime_runtime_policy(files["runtime_policy.json"])
    assert len(policy.digests) == 816
    assert policy.digests["/bin/sh"] == (bytes.fromhex("c90333979f56f38bbd41b81806015b0de502f3cc"),)
    assert policy.log_hash_alg is HashAlg.SHA1 and policy.excludes == () and policy.signing_keys == ()
    document = json.loads(files["runtime_policy.json"])
    document["ima"]["dm_policy"] = {"table": []}
    with pytest.raises(PolicyError, match="dm_policy"):
        import_keylime_runtime_policy(json.dumps(document))
    document = json.loads(files["runtime_policy.json"])
    document["meta"]["version"] = 2
    with pytest.raises(PolicyError, match="version"):
        import_keylime_runtime_policy(json.dumps(document))
    document = json.loads(files["runtime_policy.json"])
    document["excludes"] = ["/tmp/", "(unbalanced"]
    with pytest.raises(PolicyError, match="excludes"):
        import_keylime_runtime_policy(json.dumps(document))


def test_keylime_verification_keys() -> None:
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048).public_key()
    ec_key = ec.generate_private_key(ec.SECP256R1()).public_key()

    def spki(key: rsa.RSAPublicKey | ec.EllipticCurvePublicKey) -> str:
        der = key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
        return base64.b64encode(der).decode()

    ring = {"pubkeys": [spki(rsa_key), spki(ec_key)], "keyids": [0x01020304]}
    document = {"digests": {}, "verification-keys": json.dumps({".ima": json.dumps(ring)})}
    policy = import_keylime_runtime_policy(document)
    assert [key.keyid for key in policy.signing_keys] == [0x01020304, ima_keyid(ec_key)]
    compiled = compile_policy(None, policy).runtime
    assert compiled is not None and set(compiled.keys) == {0x01020304, ima_keyid(ec_key)}
    document["verification-keys"] = "{not json"
    with pytest.raises(PolicyError, match="verification-keys"):
        import_keylime_runtime_policy(document)


def test_keylime_refstate_import() -> None:
    files = bundle_files()
    boot = import_keylime_refstate(files["mb_refstate.json"])
    assert boot.secure_boot is True
    assert boot.dbx is not None and len(boot.dbx) == 371
    assert boot.kernels is not None and boot.kernels[0].vmlinuz is None and boot.kernels[0].kernel is not None
    assert boot.pk is not None and boot.pk[0].owner == "a0baa8a3-041d-48a8-bc87-c36d121b5e3d"
    document = json.loads(files["mb_refstate.json"])
    nosb = copy.deepcopy(document)
    nosb["has_secureboot"] = False
    nosb["pk"] = []
    nosb["kernels"][0]["vmlinuz_plain_sha256"] = "0x" + "00" * 32
    imported = import_keylime_refstate(nosb)
    assert imported.pk is None and imported.kek is not None  # an empty list without Secure Boot: not checked
    assert imported.kernels is not None and imported.kernels[0].kernel is None
    assert imported.kernels[0].vmlinuz == bytes(32)
    del nosb["kernels"][0]["vmlinuz_plain_sha256"]
    with pytest.raises(PolicyError, match="vmlinuz_plain_sha256"):
        import_keylime_refstate(nosb)
    broken = copy.deepcopy(document)
    broken["kernels"][0]["shim_authcode_sha256"] = "27b1"
    with pytest.raises(PolicyError, match="0x"):
        import_keylime_refstate(broken)
    broken = copy.deepcopy(document)
    del broken["mokdig"]
    with pytest.raises(PolicyError, match="mokdig"):
        import_keylime_refstate(broken)


# --- compilation ----------------------------------------------------------------------------------------------------
def test_compiled_policy_lookups_and_id() -> None:
    policy = _full_policy()
    compiled = compile_policy(policy.boot, policy.runtime, name="full")
    again = compile_policy(policy.boot, policy.runtime, name="full")
    assert compiled.policy_id == again.policy_id and compiled.policy_id.startswith("veritee:policy/full#sha256:")
    runtime = compiled.runtime
    assert runtime is not None
    assert runtime.digests["/bin/sh"] == frozenset({bytes(20), bytes(32)})
    assert runtime.is_excluded("/tmp/x") and not runtime.is_excluded("/var/tmp/x")
    assert len(runtime.known_lines) == 3
    assert compile_policy(None, policy.runtime, precompute=False).runtime.known_lines == {}  # type: ignore[union-attr]
    changed = RuntimePolicy(digests={"/bin/sh": (bytes(20),)})
    assert compile_policy(policy.boot, changed, name="full").policy_id != compiled.policy_id
