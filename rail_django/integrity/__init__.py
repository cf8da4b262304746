"""Tamper evidence: sealing events into a keyed hash chain and verifying it."""
