"""Tamper evidence: a hash chain over stored rows, signed positions, and checkpoints kept elsewhere.

``canonical`` (what a row's hash covers), ``signing`` (HMAC or Ed25519 keys),
``state`` (the signed head and anchor), ``sealing`` (rows join the chain),
``checkpoints`` (signed statements of the head sent to every sink),
``stored_form`` (the stored text is the writer's), ``verify`` (all of it
checked). ``chain`` gathers the public names.
"""
