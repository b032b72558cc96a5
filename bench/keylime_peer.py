"""Keylime 7.14.3 as the measured peer. Run by the PEER venv's python, from the repository root:

    .bench-venv/keylime/bin/python -m bench.keylime_peer --bundle DIR [--full N] [--ima N] [--eventlog N] [--only NAME]

It gives Keylime a temporary config dir of its own (nothing under /etc), checks Keylime's verdicts on the good
bundle (PASS) and on the tampered variants (FAIL) — a benchmark whose peer does not reach the right verdict is marked
invalid — then times each benchmark and prints one JSON object on stdout (logs go to stderr):

* ``full``: ``cloud_verifier_common.process_verify_attestation`` — quote, event log (``tpm2_eventlog`` in a
  subprocess) against the quoted PCRs, the ``example`` measured-boot policy (evaluated on every call:
  ``measured_boot_evaluate = always``), the IMA list against PCR 10 and the runtime policy;
* ``ima``: ``ima.process_measurement_list`` without a policy (parse, template data, PCR 10 replay and compare);
* ``ima_policy``: the same with the runtime policy, as Keylime runs it inside a full appraisal;
* ``eventlog``: ``mba.bootlog_parse`` (``tpm2_eventlog`` + enrichment + PCR values), compared with the quote.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import platform
import subprocess
import sys
import tempfile
from collections.abc import Callable, Mapping
from importlib.metadata import version
from pathlib import Path
from typing import Any

from bench.bundle import EXPECTED, Bundle, Variant
from bench.timing import Stats, measure

PEER_NAMES = ("full", "ima", "ima_policy", "eventlog")
KEYLIME_VERSION = "7.14.3"
_MB_PCRS = frozenset((0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 11, 12, 13, 14, 15))  # keylime.config.MEASUREDBOOT_PCRS
_IMA_PCR = 10

_VERIFIER_CONF = """[verifier]
measured_boot_policy_name = example
measured_boot_evaluate = always
"""
_LOGGING_CONF = """[loggers]
keys = root,keylime

[handlers]
keys = stderr

[formatters]
keys = plain

[logger_root]
level = WARNING
handlers = stderr

[logger_keylime]
level = WARNING
handlers =
qualname = keylime
propagate = 1

[handler_stderr]
class = StreamHandler
level = NOTSET
formatter = plain
args = (sys.stderr,)

[formatter_plain]
format = %(asctime)s %(name)s %(levelname)s %(message)s
"""


def configure_keylime(config_dir: Path) -> None:
    """Point Keylime at a config dir of our own; must run before keylime is imported (it reads config then)."""
    (config_dir / "verifier.conf").write_text(_VERIFIER_CONF)
    (config_dir / "logging.conf").write_text(_LOGGING_CONF)
    os.environ["KEYLIME_DIR"] = str(config_dir)
    os.environ["KEYLIME_VERIFIER_CONFIG"] = str(config_dir / "verifier.conf")
    os.environ["KEYLIME_LOGGING_CONFIG"] = str(config_dir / "logging.conf")


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


class Peer:
    """Keylime's entry points, imported after :func:`configure_keylime`."""

    def __init__(self) -> None:
        from keylime import cloud_verifier_common, config  # type: ignore[import-not-found, unused-ignore]
        from keylime.common import algorithms  # type: ignore[import-not-found, unused-ignore]
        from keylime.ima import ima  # type: ignore[import-not-found, unused-ignore]
        from keylime.mba import mba  # type: ignore[import-not-found, unused-ignore]
        from keylime.tpm.tpm_main import Tpm  # type: ignore[import-not-found, unused-ignore]

        mba.load_imports(skip_custom_policies=True)
        for option, wanted in (("measured_boot_policy_name", "example"), ("measured_boot_evaluate", "always")):
            got = config.get("verifier", option)
            if got != wanted:
                raise RuntimeError(f"keylime config verifier.{option} is {got!r}, not {wanted!r}")
        self.cvc: Any = cloud_verifier_common
        self.ima: Any = ima
        self.mba: Any = mba
        self.tpm: Any = Tpm
        self.sha256: Any = algorithms.Hash.SHA256

    # --- inputs as a Keylime verifier receives them -------------------------------------------------------------
    @staticmethod
    def quote_string(files: Mapping[str, bytes]) -> str:
        return "r" + ":".join(_b64(files[name]) for name in ("quote.msg", "quote.sig", "quote.pcrs"))

    @staticmethod
    def nonce_b64(files: Mapping[str, bytes]) -> str:
        return _b64(bytes.fromhex(files["nonce.hex"].decode().strip()))

    def quoted_pcrs(self, files: Mapping[str, bytes]) -> dict[int, str]:
        """The SHA-256 PCRs of the quote, as Keylime reads them after checking it."""
        pcrs, error = self.tpm._tpm2_checkquote(
            _b64(files["ak.pub"]), self.quote_string(files), self.nonce_b64(files), "sha256", False
        )
        if error:
            raise RuntimeError(f"keylime rejects the bundle's quote: {error}")
        return {int(k): str(v) for k, v in pcrs.items()}

    # --- the benchmarked calls ----------------------------------------------------------------------------------
    def full_call(self, files: Mapping[str, bytes]) -> Callable[[], Any]:
        args = (
            _b64(files["ek.pub"]),
            _b64(files["ak.pub"]),
            self.quote_string(files),
            self.nonce_b64(files),
            "sha256",
            "{}",
            json.loads(files["runtime_policy.json"]),
            files["mb_refstate.json"].decode(),
            files["ascii_runtime_measurements"].decode(),
            _b64(files["binary_bios_measurements"]),
        )
        verify = self.cvc.process_verify_attestation
        return lambda: verify(*args, mb_policy_name="example")

    def ima_call(self, files: Mapping[str, bytes], *, policy: bool) -> Callable[[], Any]:
        text = files["ascii_runtime_measurements"].decode()
        pcr10 = self.quoted_pcrs(files)[_IMA_PCR]
        runtime_policy = json.loads(files["runtime_policy.json"]) if policy else None
        boot_aggregates = None
        if policy:  # as in a full appraisal: the boot aggregates come from the event log, parsed beforehand
            _, boot_aggregates, _, failure = self.mba.bootlog_parse(_b64(files["binary_bios_measurements"]), "sha256")
            if failure:
                raise RuntimeError(f"keylime cannot parse the event log: {failure.get_event_ids()}")
        process = self.ima.process_measurement_list
        sha256 = self.sha256

        def call() -> Any:
            _, failure = process(  # Keylime adds the boot aggregates to the policy: the same on every call
                None,
                text.split("\n"),
                runtime_policy,
                pcrval=pcr10,
                boot_aggregates=boot_aggregates,
                hash_alg=sha256,
            )
            return failure

        return call

    def eventlog_call(self, files: Mapping[str, bytes]) -> Callable[[], Any]:
        log_b64 = _b64(files["binary_bios_measurements"])
        parse = self.mba.bootlog_parse
        return lambda: parse(log_b64, "sha256")

    def eventlog_verdict(self, files: Mapping[str, bytes], quoted: Mapping[int, str]) -> tuple[bool, list[str]]:
        """PASS when the log parses and replays to every quoted measured-boot PCR (Keylime's own comparison)."""
        pcr_hashes, _, _, failure = self.eventlog_call(files)()
        if failure:
            return False, [str(item) for item in failure.get_event_ids()]
        wrong = [
            f"pcr_{pcr}"
            for pcr, value in sorted(quoted.items())
            if pcr in _MB_PCRS and int(pcr_hashes.get(str(pcr), 0)) != int(value, 16)
        ]
        return not wrong, wrong


def _failure_verdict(failure: Any) -> tuple[bool, list[str]]:
    return (not failure), ([str(item) for item in failure.get_event_ids()] if failure else [])


def run_benchmark(peer: Peer, bundle: Bundle, name: str, iterations: int) -> dict[str, Any]:
    good = bundle.variant(Variant.GOOD)
    verdicts: dict[str, dict[str, Any]] = {}
    quoted = peer.quoted_pcrs(good)
    for variant, should_pass in EXPECTED[name].items():
        files = bundle.variant(variant)
        if name == "full":
            passed, events = _failure_verdict(peer.full_call(files)())
        elif name in ("ima", "ima_policy"):
            passed, events = _failure_verdict(peer.ima_call(files, policy=name == "ima_policy")())
        else:
            passed, events = peer.eventlog_verdict(files, quoted)
        verdicts[variant.value] = {
            "verdict": "PASS" if passed else "FAIL",
            "expected": "PASS" if should_pass else "FAIL",
            "events": events[:10],
        }
    if name == "full":
        call = peer.full_call(good)
    elif name in ("ima", "ima_policy"):
        call = peer.ima_call(good, policy=name == "ima_policy")
    else:
        call = peer.eventlog_call(good)
    stats: Stats = measure(call, iterations)
    units: dict[str, int] = {}
    if name in ("ima", "ima_policy"):
        units["entries"] = sum(1 for line in good["ascii_runtime_measurements"].decode().split("\n") if line.strip())
    if name == "eventlog":
        _, _, data, _ = peer.eventlog_call(good)()
        units["events"] = len(data.get("events", [])) if isinstance(data, dict) else 0
    return {
        "stats": stats.to_json(),
        "verdicts": verdicts,
        "valid": all(item["verdict"] == item["expected"] for item in verdicts.values()),
        "units": units,
    }


def _tool_version(command: str) -> str:
    try:
        done = subprocess.run([command, "--version"], capture_output=True, text=True, timeout=30, check=False)
    except OSError as exc:
        return f"unavailable: {exc}"
    return done.stdout.strip().splitlines()[0] if done.stdout.strip() else f"exit {done.returncode}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.keylime_peer", description=__doc__.split("\n")[0])
    parser.add_argument("--bundle", type=Path, required=True, help="the evidence bundle directory")
    parser.add_argument("--only", action="append", choices=PEER_NAMES, help="run only these (repeatable)")
    for name, default in (("full", 30), ("ima", 30), ("ima-policy", 30), ("eventlog", 30)):
        parser.add_argument(f"--{name}", type=int, default=default, metavar="N", help=f"iterations (default {default})")
    args = parser.parse_args(argv)
    iterations = {"full": args.full, "ima": args.ima, "ima_policy": args.ima_policy, "eventlog": args.eventlog}
    bundle = Bundle.load(args.bundle)
    with tempfile.TemporaryDirectory(prefix="veritee-bench-keylime-") as config_dir:
        configure_keylime(Path(config_dir))
        peer = Peer()
        results = {name: run_benchmark(peer, bundle, name, iterations[name]) for name in args.only or PEER_NAMES}
        output = {
            "peer": "keylime",
            "version": version("keylime"),
            "module": str(Path(peer.cvc.__file__).parent),
            "python": platform.python_version(),
            "tpm2_tools": _tool_version("tpm2_eventlog"),
            "config": {"measured_boot_policy_name": "example", "measured_boot_evaluate": "always"},
            "benchmarks": results,
        }
    json.dump(output, sys.stdout)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
