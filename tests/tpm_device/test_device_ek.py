"""EK certificates from swtpm NV, their chain to the local CA, and EKs re-created from the TCG templates."""

from __future__ import annotations

import datetime

import pytest
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from tpm2_pytss.types import TPM2B_PUBLIC

from veritee.tpm.credential import ObjectAttribute, parse_encryption_key
from veritee.tpm.device import EkKind, TpmDevice
from veritee.tpm.swtpm import SwtpmProcess

pytestmark = pytest.mark.swtpm

TCG_EK_OID = x509.ObjectIdentifier("2.23.133.8.1")  # tcg-kp-EKCertificate


@pytest.mark.parametrize("kind", list(EkKind))
def test_ek_certificate_parses_and_matches_created_ek(tpm: TpmDevice, kind: EkKind) -> None:
    der = tpm.read_ek_certificate(kind)
    cert = x509.load_der_x509_certificate(der)
    assert cert.public_bytes(serialization.Encoding.DER) == der  # exactly the DER, no NV padding
    ek = parse_encryption_key(tpm.create_ek(kind))
    assert cert.public_key() == ek.key
    if kind is EkKind.RSA:
        assert isinstance(ek.key, rsa.RSAPublicKey) and ek.key.key_size == 2048
        assert (ek.name_alg.label, ek.symmetric_bits) == ("sha256", 128)
        assert not ek.attributes & ObjectAttribute.USER_WITH_AUTH  # template L-1: policy only
    else:
        assert isinstance(ek.key, ec.EllipticCurvePublicKey) and ek.key.curve.name == "secp384r1"
        assert (ek.name_alg.label, ek.symmetric_bits) == ("sha384", 256)
        assert ek.attributes & ObjectAttribute.USER_WITH_AUTH  # template H-4
    assert ek.attributes & ObjectAttribute.RESTRICTED and ek.attributes & ObjectAttribute.DECRYPT
    eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert TCG_EK_OID in list(eku)


@pytest.mark.parametrize("kind", list(EkKind))
def test_ek_certificate_chains_to_the_local_ca(tpm: TpmDevice, node: SwtpmProcess, kind: EkKind) -> None:
    cert = x509.load_der_x509_certificate(tpm.read_ek_certificate(kind))
    ca = x509.load_pem_x509_certificate(node.ca_cert_pem)
    root = x509.load_pem_x509_certificate(node.ca.root_ca_cert_pem)
    cert.verify_directly_issued_by(ca)
    ca.verify_directly_issued_by(root)
    root.verify_directly_issued_by(root)
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca


def test_ek_certificate_does_not_verify_under_another_ca(tpm: TpmDevice) -> None:
    cert = x509.load_der_x509_certificate(tpm.read_ek_certificate(EkKind.RSA))
    key = rsa.generate_private_key(65537, 2048)
    name = cert.issuer  # the same issuer name, another key
    now = datetime.datetime.now(datetime.UTC)
    impostor = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    with pytest.raises(InvalidSignature):
        cert.verify_directly_issued_by(impostor)


@pytest.mark.parametrize("kind", list(EkKind))
def test_ek_name_matches_tpm2_pytss(tpm: TpmDevice, kind: EkKind) -> None:
    public = tpm.create_ek(kind)
    peer, used = TPM2B_PUBLIC.unmarshal(public)
    assert used == len(public)
    assert parse_encryption_key(public).name == bytes(peer.get_name().marshal())[2:]


def test_ek_creation_is_deterministic(tpm: TpmDevice) -> None:
    assert tpm.create_ek(EkKind.RSA) == tpm.create_ek(EkKind.RSA)
    assert tpm.create_ek(EkKind.ECC) == tpm.create_ek(EkKind.ECC)
