"""HMAC signatures of stored rows: what a store writes with its secret and checks on read.

Shared by the SQL stores and by export/import, so that a row signed in one store is
verified in another holding the same secret.
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Any

from ..errors import ConfigurationError
from ..models import Step


def secret_key(secret: str | bytes | None) -> bytes | None:
    if secret is None:
        return None
    if isinstance(secret, str):
        secret = secret.encode()
    if not isinstance(secret, bytes) or not secret:
        raise ConfigurationError("secret must be a non-empty str or bytes")
    return secret


def sign_node(key: bytes | None, nid: str, parent: str, task_key: str, step: Step) -> bytes | None:
    if key is None:
        return None
    return _mac(key, b"node", nid, parent, task_key, step.tool, step.code, step.call)


def sign_result(key: bytes | None, nid: str, task_key: str, result: bytes | None) -> bytes | None:
    """A recorded end and its result, signed apart from its node: node rows signed
    before results were kept stay valid, and a forged result fails on its own. An end
    with no result (one recorded before results were kept, or whose result could not be
    encoded) is signed too: without it, whoever can write to the database could turn a
    signed step into an end, and replay would stop there calling it a hit."""
    if key is None:
        return None
    if result is None:
        return _mac(key, b"end", nid, task_key)
    return _mac(key, b"result", nid, task_key, result)


def sign_approval(key: bytes | None, nid: str, task_key: str) -> bytes | None:
    """A person's approval of the path ending at ``nid``, signed apart from its node:
    approving changes no node's id or signature, and an approval nobody with the secret
    made fails on its own (replay with ``approved_only`` then refuses the path)."""
    if key is None:
        return None
    return _mac(key, b"approved", nid, task_key)


def sign_snapshot(key: bytes | None, nid: str, which: str, data: bytes) -> bytes | None:
    if key is None:
        return None
    return _mac(key, b"snapshot", nid, which, data)


def signer(key: bytes | None) -> str:
    """What a store records of the secret its rows are signed with ("" for none): a MAC
    of a constant, which tells secrets apart without giving one away."""
    return "" if key is None else _mac(key, b"signer").hex()[:32]


def valid(sig: Any, expected: bytes | None) -> bool:
    return sig is not None and expected is not None and hmac.compare_digest(bytes(sig), expected)


def _mac(key: bytes, *parts: str | bytes) -> bytes:
    mac = hmac.new(key, digestmod=hashlib.sha256)
    for part in parts:
        data = part.encode() if isinstance(part, str) else part
        mac.update(len(data).to_bytes(8, "little"))  # length-prefixed: no ambiguous joins
        mac.update(data)
    return mac.digest()
