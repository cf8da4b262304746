"""The integrity chain's public names, gathered from the modules that implement them.

With ``AUDIT_INTEGRITY_KEY`` (HMAC-SHA256) or ``AUDIT_INTEGRITY_SIGNING_KEY``
(Ed25519) set, the background writer seals stored rows into a hash chain
(:mod:`~rail_django.integrity.sealing`), signs the chain's head
(:mod:`~rail_django.integrity.state`, :mod:`~rail_django.integrity.signing`),
publishes signed checkpoints to every sink
(:mod:`~rail_django.integrity.checkpoints`), and ``audit_management verify``
checks all of it (:mod:`~rail_django.integrity.verify`,
:mod:`~rail_django.integrity.stored_form`). ``docs/integrity.md`` says exactly
what is and is not detected.
"""

from rail_django.integrity.canonical import GENESIS, canonical, chain_hash
from rail_django.integrity.checkpoints import Checkpoint, make_checkpoint, publish, read_checkpoints
from rail_django.integrity.sealing import integrity_key, record_anchor, seal_pending
from rail_django.integrity.signing import configured_signer, load_public_key
from rail_django.integrity.verify import OUT_OF_ORDER_TOLERANCE, Problem, VerifyReport, verify_chain

__all__ = [
    "GENESIS", "OUT_OF_ORDER_TOLERANCE", "Checkpoint", "Problem", "VerifyReport", "canonical", "chain_hash",
    "configured_signer", "integrity_key", "load_public_key", "make_checkpoint", "publish", "read_checkpoints",
    "record_anchor", "seal_pending", "verify_chain",
]
