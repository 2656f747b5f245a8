"""Sealed credentials: what opens, what does not, and what is shown instead."""
from __future__ import annotations

import pytest
from cryptography.fernet import Fernet

from gateway.config import ConfigError
from gateway.runtime.sealing import SealBroken, Sealer, fingerprint


def test_a_sealed_value_opens_with_its_key_only():
    sealer = Sealer("k" * 40)
    sealed = sealer.seal("sk-live-123456")
    assert "sk-live-123456" not in sealed
    assert sealer.open(sealed) == "sk-live-123456"
    assert sealer.seal("sk-live-123456") != sealed        # fresh IV every time
    with pytest.raises(SealBroken):
        Sealer("j" * 40).open(sealed)
    with pytest.raises(SealBroken):
        sealer.open(sealed[:-4] + "AAAA")                  # tampered


def test_fernet_keys_and_passphrases_are_accepted_short_ones_refused():
    key = Fernet.generate_key().decode()
    assert Sealer(key).open(Sealer(key).seal("x")) == "x"
    assert Sealer.from_env({}) is None
    with pytest.raises(ConfigError) as info:
        Sealer.from_env({"PRISM_SECRET_KEY": "short"})
    assert "PRISM_SECRET_KEY" in str(info.value)


def test_fingerprint_is_short_and_stable():
    assert fingerprint("abc") == fingerprint("abc") != fingerprint("abd")
    assert fingerprint("abc").startswith("sha256:") and len(fingerprint("abc")) == 17
