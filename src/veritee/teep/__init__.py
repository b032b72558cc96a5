"""TEEP (draft-ietf-teep-protocol-26): messages, COSE protection, EAT evidence and the sans-I/O TAM and Agent state
machines.

* :mod:`veritee.teep.codes` - message types, option labels, error codes, data items, cipher suites, SUIT COSE profiles
* :mod:`veritee.teep.messages` - the five messages: ``decode_message`` / ``.encode()`` (byte-exact), validation
* :mod:`veritee.teep.cose_wrap` - ``sign_message`` / ``sign_query_request`` / ``open_message``
* :mod:`veritee.teep.eat` - TEEP EAT profile: ``make_teep_claims`` / ``sign_eat`` / ``verify_eat``
* :mod:`veritee.teep.tam` - ``TamSession`` / ``TamConfig``; :mod:`veritee.teep.agent` - ``TeepAgent`` / ``AgentConfig``
"""

from veritee.teep.agent import AgentConfig, AgentState, DeviceClaims, TeepAgent
from veritee.teep.codes import CipherSuite, DataItem, ErrorCode, FreshnessMechanism, MessageType, OptionLabel
from veritee.teep.cose_wrap import VerifiedMessage, open_message, sign_message, sign_query_request
from veritee.teep.eat import EatClaims, make_teep_claims, sign_eat, verify_eat
from veritee.teep.messages import Error, Message, QueryRequest, QueryResponse, Success, Update, decode_message
from veritee.teep.tam import TamConfig, TamSession, TamState

__all__ = [
    "AgentConfig",
    "AgentState",
    "CipherSuite",
    "DataItem",
    "DeviceClaims",
    "EatClaims",
    "Error",
    "ErrorCode",
    "FreshnessMechanism",
    "Message",
    "MessageType",
    "OptionLabel",
    "QueryRequest",
    "QueryResponse",
    "Success",
    "TamConfig",
    "TamSession",
    "TamState",
    "TeepAgent",
    "Update",
    "VerifiedMessage",
    "decode_message",
    "make_teep_claims",
    "open_message",
    "sign_eat",
    "sign_message",
    "sign_query_request",
    "verify_eat",
]
