"""``veritee suit`` commands through Typer's test runner."""

from __future__ import annotations

import json
from pathlib import Path

from suit_support import trust_anchor, vector, vector_path
from typer.testing import CliRunner

from veritee.cli import suit as suit_cli
from veritee.suit import decode_envelope

runner = CliRunner()
KEY = str(vector_path("suit-manifest", "signing_key_public.pem"))
PRIVATE = str(vector_path("suit-manifest", "signing_key_private.pem"))
TAM = str(vector_path("libteep", "key", "tam_prime256v1_pub.pem"))


def test_inspect_hex_vector_json() -> None:
    result = runner.invoke(
        suit_cli.app, ["inspect", str(vector_path("teep-protocol", "E_ex3_suit_personalization.hex")), "--json"]
    )
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["sequence_number"] == 3
    assert data["components"] == ["['TEEP-Device', 'SecureFS', 'config.json']"]
    assert data["dependencies"] == {"1": "['TEEP-Device', 'SecureFS', h'8d82573a926d4754935332dc29997f74', 'suit']"}
    assert [c["command"] for c in data["sequences"]["install"]][-1] == "write"
    text = runner.invoke(suit_cli.app, ["inspect", str(vector_path("suit-manifest", "example2_signed_full.hex"))])
    assert text.exit_code == 0 and "severable_members_present" in text.output


def test_verify_ok_and_failures(tmp_path: Path) -> None:
    envelope = str(vector_path("teep-protocol", "E_ex1_suit_uri.hex"))
    ok = runner.invoke(suit_cli.app, ["verify", envelope, "--key", KEY, "--json"])
    assert ok.exit_code == 0, ok.output
    assert json.loads(ok.output)["signer_thumbprint"] == trust_anchor().thumbprint().hex()
    bad = runner.invoke(suit_cli.app, ["verify", envelope, "--key", TAM, "--json"])
    assert bad.exit_code == 1 and json.loads(bad.output)["error"].startswith("UntrustedSignerError")
    garbage = tmp_path / "garbage.suit"
    garbage.write_bytes(b"\xff\x00")
    broken = runner.invoke(suit_cli.app, ["verify", str(garbage), "--key", KEY])
    assert broken.exit_code == 1 and "DecodeError" in broken.output


def test_create_then_verify(tmp_path: Path) -> None:
    payload = tmp_path / "ta.bin"
    payload.write_bytes(b"Hello, Secure World!")
    out = tmp_path / "ta.suit"
    args = [
        "create",
        "--component-id",
        "TEEP-Device/SecureFS/8d82573a-926d-4754-9353-32dc29997f74/ta",
        "--seq",
        "3",
        "--payload",
        str(payload),
        "--uri",
        "https://example.org/8d82573a-926d-4754-9353-32dc29997f74.ta",
        "--key",
        PRIVATE,
        "-o",
        str(out),
        "--vendor-id",
        "c0ddd5f1-5243-5660-87db-4f5b0aa26c2f",
        "--class-id",
        "db42f709-3d8c-55ba-a8c5-265fc5820f4e",
        "--manifest-component-id",
        "TEEP-Device/SecureFS/8d82573a-926d-4754-9353-32dc29997f74/suit",
        "--json",
    ]
    result = runner.invoke(suit_cli.app, args)
    assert result.exit_code == 0, result.output
    assert out.read_bytes() == vector("teep-protocol", "E_ex1_suit_uri.hex")  # the same layout as App. E example 1
    verify = runner.invoke(suit_cli.app, ["verify", str(out), "--key", KEY])
    assert verify.exit_code == 0 and "ok: True" in verify.output
    out2 = tmp_path / "int.suit"
    integrated = [
        "create",
        "--component-id",
        "0x00",
        "--seq",
        "1",
        "--payload",
        str(payload),
        "--integrated",
        "--uri",
        "#p",
        "--key",
        PRIVATE,
        "-o",
        str(out2),
        "--text",
        "demo",
        "--sever",
        "text",
        "--kid",
        "--tagged",
        "--invoke",
    ]
    result = runner.invoke(suit_cli.app, integrated)
    assert result.exit_code == 0, result.output
    envelope = decode_envelope(out2.read_bytes())
    assert envelope.tagged and envelope.integrated == {"#p": b"Hello, Secure World!"}
    assert envelope.verify(trust_anchor()).text is not None


def test_create_rejects_bad_options(tmp_path: Path) -> None:
    out = tmp_path / "x.suit"
    no_source = runner.invoke(
        suit_cli.app, ["create", "--component-id", "a", "--seq", "1", "--key", PRIVATE, "-o", str(out), "--json"]
    )
    assert no_source.exit_code == 1 and "EncodeError" in json.loads(no_source.output)["error"]
    sever = runner.invoke(
        suit_cli.app,
        [
            "create",
            "--component-id",
            "a",
            "--seq",
            "1",
            "--key",
            PRIVATE,
            "-o",
            str(out),
            "--uri",
            "https://x",
            "--image-digest",
            "00" * 32,
            "--image-size",
            "1",
            "--sever",
            "bogus",
        ],
    )
    assert sever.exit_code == 1 and "cannot sever" in sever.output
    assert not out.exists()
