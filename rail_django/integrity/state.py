"""The chain's two signed positions, kept in ``rail_django_auditchainstate``.

- ``head``: the last sealed row (its sequence and hash);
- ``anchor``: the last row retention removed (verification starts after it).

Each is signed, so nobody without the key can write a *new* position. A
position saved earlier can still be written back by the database's owner:
only checkpoints kept elsewhere show that (:mod:`rail_django.integrity.checkpoints`).
"""

from __future__ import annotations

from typing import Any

from rail_django.integrity.canonical import GENESIS
from rail_django.integrity.signing import Signer, describe_signature

HEAD = "head"
ANCHOR = "anchor"


def state_message(name: str, sequence: int, digest: str) -> bytes:
    """What a chain position's signature covers."""
    return f"{name}:{sequence}:{digest}".encode()


def _model() -> Any:
    from rail_django.models import AuditChainState

    return AuditChainState


def load_state(name: str, signer: Signer, alias: str, *, for_update: bool = False, nowait: bool = False) -> Any:
    """The stored position ``name``; a missing one is the (unsaved) genesis position."""
    model = _model()
    manager = model.objects.using(alias)
    queryset = manager.select_for_update(nowait=nowait) if for_update else manager
    state = queryset.filter(name=name).first()
    if state is None:
        state = model(name=name, sequence=0, hash=GENESIS, signature="")
        if signer.can_sign:
            sign_state(state, signer)
        state.missing = True
    else:
        state.missing = False
    return state


def sign_state(state: Any, signer: Signer) -> None:
    state.signature = signer.sign(state_message(state.name, state.sequence, state.hash))


def state_fault(state: Any, signer: Signer) -> str | None:
    """Why ``state``'s signature does not hold, or None when it does (a missing position holds)."""
    if state.missing:
        return None
    if signer.verify(state_message(state.name, state.sequence, state.hash), state.signature):
        return None
    found = describe_signature(state.signature)
    expected = "an Ed25519 signature" if signer.algorithm == "ed25519" else "an HMAC-SHA256 signature"
    if found != expected:
        return (
            f"the chain {state.name} (sequence {state.sequence}) carries {found}, not {expected} by "
            f"{signer.describe()}: it was altered, or the key changed"
        )
    return f"the chain {state.name} (sequence {state.sequence}) was altered: its signature by {signer.describe()} fails"
