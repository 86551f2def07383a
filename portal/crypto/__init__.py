"""Encryption for Handover: key-encryption keys and sealed secrets.

Nothing in this package knows about Flask; callers pass keys and contexts explicitly.
"""
