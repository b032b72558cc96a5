"""``veritee teep decode``: hex or binary, bare or COSE, verified with --key, typed errors as exit codes."""

from __future__ import annotations

import json
from pathlib import Path

from teep_support import vector, vector_hex
from typer.testing import CliRunner

from veritee.cli import teep as cli

runner = CliRunner()


def _json(args: list[str]) -> tuple[int, dict[str, object]]:
    result = runner.invoke(cli.app, [*args, "--json"])
    return result.exit_code, json.loads(result.stdout)


def test_decode_hex_vector_verified() -> None:
    key = vector("libteep", "key", "tam_prime256v1_pub.pem")
    code, out = _json(["decode", str(vector("libteep", "update_cose.hex")), "--key", str(key)])
    assert code == 0
    assert out["verified"] is True and out["alg"] == "ES256"
    assert out["cose"] == {"type": "SIGN1", "algs": ["ES256"], "kids": [out["signer_thumbprint"]]}
    message = out["message"]
    assert isinstance(message, dict) and message["type"] == "UPDATE"
    assert message["fields"]["token"] == "a0a1a2a3a4a5a6a7a8a9aaabacadaeaf"


def test_decode_binary_bare_and_compat(tmp_path: Path) -> None:
    path = tmp_path / "qr.cbor"
    path.write_bytes(vector_hex("libteep", "query_response.hex"))
    code, out = _json(["decode", str(path), "--compat"])
    assert code == 0 and out["cose"] is None and out["verified"] is False
    message = out["message"]
    assert isinstance(message, dict)
    assert message["fields"]["selected_cipher_suite"] == [[18, -7]]
    assert any("option 5" in q for q in message["quirks"])
    text = runner.invoke(cli.app, ["decode", str(path)])
    assert text.exit_code == 0 and "QUERY_RESPONSE" in text.stdout and "extensions" in text.stdout


def test_decode_wrong_key_and_bad_input(tmp_path: Path) -> None:
    agent = vector("libteep", "key", "teep_agent_prime256v1_pub.pem")
    code, out = _json(["decode", str(vector("libteep", "update_cose.hex")), "--key", str(agent)])
    assert code == 1 and out["error"]["type"] == "UntrustedSignerError"  # type: ignore[index]
    garbage = tmp_path / "garbage.bin"
    garbage.write_bytes(b"\xff\x00\x01")
    code, out = _json(["decode", str(garbage)])
    assert code == 1 and out["error"]["type"] == "DecodeError"  # type: ignore[index]
    code, out = _json(["decode", str(tmp_path / "missing.hex")])
    assert code == 2 and out["error"]["type"] == "OSError"  # type: ignore[index]
    result = runner.invoke(cli.app, ["decode", str(vector("libteep", "query_request_err3.hex"))])
    assert result.exit_code == 1 and "error:" in result.output


def test_decode_eat(tmp_path: Path) -> None:
    agent = vector("libteep", "key", "teep_agent_prime256v1_pub.pem")
    code, out = _json(["decode", str(vector("libteep", "evidence_cose.hex")), "--key", str(agent), "--compat"])
    assert code == 0 and out["verified"] is True
    eat = out["eat"]
    assert isinstance(eat, dict) and eat["claims"]["1"] == "Intel SGX TEEP Agent"
    result = runner.invoke(cli.app, ["decode", str(vector("eat-rfc9711", "Example-Tokens_valid_cwt.derived.hex"))])
    assert result.exit_code == 1  # a CWT tag (61) is not a TEEP message wrapper
    text = runner.invoke(cli.app, ["decode", str(vector("libteep", "evidence_cose.hex")), "--compat"])
    assert text.exit_code == 0 and "EAT claims" in text.stdout and "NOT verified" in text.stdout
