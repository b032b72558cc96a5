"""TEEP message throughput against the bare cost of the signature operations, measured in the same run.

``python -m bench.teep_messages [--quick]``. For each message kind and algorithm it times

* ours, send side: build the message, encode it, sign it into a COSE_Sign1 (``veritee.teep.cose_wrap.sign_message``);
* ours, receive side: verify the COSE_Sign1 against the trust anchors and decode + validate the message
  (``open_message``);
* the baseline: the bare signature operation (``cryptography``) over a to-be-signed structure of the same size, with
  the same key.

The overhead ratio is ours / bare; the target is ≤ 1.5×. Every received message is checked to decode to what was
sent, so a fast wrong answer cannot pass.
"""

from __future__ import annotations

import argparse
import json
import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

from bench.timing import Stats, measure
from veritee.cose import Algorithm, CoseKey, Sign1Message
from veritee.suit.builder import TrustedComponentSpec, build_envelope
from veritee.teep.codes import ALL_SUIT_COSE_PROFILES, MTI_CIPHER_SUITES, DataItem
from veritee.teep.cose_wrap import open_message, sign_message
from veritee.teep.messages import Message, QueryRequest, Success, Update

TARGET = 1.5


@dataclass(frozen=True)
class Row:
    message: str
    alg: str
    side: str
    ours: Stats
    bare: Stats

    @property
    def ratio(self) -> float:
        return self.ours.median / self.bare.median

    def to_json(self) -> dict[str, Any]:
        return {"message": self.message, "alg": self.alg, "side": self.side, "ours": self.ours.to_json(),
                "bare": self.bare.to_json(), "ratio": self.ratio, "per_second": 1 / self.ours.median}  # fmt: skip


def _messages(signer: CoseKey) -> dict[str, Callable[[], Message]]:
    envelope = build_envelope(
        TrustedComponentSpec(
            component_id=(b"bench-tc",), sequence_number=7, payload=secrets.token_bytes(1024), integrated=True
        ),
        signer,
    )
    token = secrets.token_bytes(16)
    return {
        "QueryRequest": lambda: QueryRequest(
            token=token,
            supported_cipher_suites=MTI_CIPHER_SUITES,
            supported_suit_cose_profiles=ALL_SUIT_COSE_PROFILES,
            data_item_requested=DataItem.ATTESTATION | DataItem.TRUSTED_COMPONENTS,
            challenge=secrets.token_bytes(32),
        ),
        "Update(1 KiB TC)": lambda: Update(token=token, manifest_list=(envelope,)),
        "Success": lambda: Success(token=token),
    }


def run(quick: bool) -> list[Row]:
    n = 20 if quick else 1500
    rows: list[Row] = []
    for alg in (Algorithm.ESP256, Algorithm.Ed25519):
        key = CoseKey.generate(alg)
        anchors = [key.public()]
        for name, make in _messages(key).items():
            sent = make()
            signed = sign_message(sent, key)
            tbs = Sign1Message.decode(signed).to_be_signed()
            signature = key.sign_bytes(alg, tbs)
            public = key.public()
            if open_message(signed, anchors).message != sent:
                raise SystemExit(f"{name}: the received message differs from the one sent")
            send = measure(lambda make=make, key=key: sign_message(make(), key), n)  # type: ignore[misc]
            bare_sign = measure(partial(key.sign_bytes, alg, tbs), n)
            receive = measure(partial(open_message, signed, anchors), n)
            bare_verify = measure(partial(public.verify_bytes, alg, tbs, signature), n)
            rows.append(Row(name, alg.name, "encode+sign", send, bare_sign))
            rows.append(Row(name, alg.name, "verify+decode", receive, bare_verify))
    return rows


def render(rows: Sequence[Row]) -> str:
    lines = [f"{'message':<18} {'alg':<8} {'side':<14} {'ours/s':>9} {'bare/s':>9} {'overhead':>9}  target ≤{TARGET}×"]
    for row in rows:
        mark = "met" if row.ratio <= TARGET else "MISSED"
        lines.append(f"{row.message:<18} {row.alg:<8} {row.side:<14} {1 / row.ours.median:>9.0f} "
                     f"{1 / row.bare.median:>9.0f} {row.ratio:>8.2f}×  {mark}")  # fmt: skip
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.teep_messages", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a few iterations (a smoke run, not a measurement)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    args = parser.parse_args(argv)
    rows = run(args.quick)
    print(json.dumps([row.to_json() for row in rows], indent=2) if args.json else render(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
