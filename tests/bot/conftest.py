"""Fixtures of the tests that sign webhook deliveries as Cliq does (an RSA key)."""

from __future__ import annotations

import dataclasses

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey

from bot.config import Settings


@pytest.fixture(scope="module")
def cliq_key() -> RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture
def cliq_signed_settings(settings: Settings, cliq_key: RSAPrivateKey) -> Settings:
    """``settings`` with ``CLIQ_PUBLIC_KEY`` set to ``cliq_key``'s public half."""
    pem = (
        cliq_key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    return dataclasses.replace(settings, cliq_public_key=pem)
