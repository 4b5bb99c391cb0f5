"""What each sealed value is bound to: the AES-GCM associated-data labels, in one place.

A ciphertext opens only with the label it was sealed with (:mod:`bot.vault`), so the labels are
part of the stored data: a label that drifted in one place would leave every record sealed
before it unreadable there (a rotation, say, re-sealing tokens that the OAuth flow then cannot
open). The OAuth flow (:mod:`bot.accounts`), the service catalog (:mod:`bot.services`) and key
rotation (:mod:`bot.rotate`) therefore all seal and open through this module.

The labels, as stored (never change them)::

    authorization:<connection link name>:<chat user id>:<part>   part: "a" access, "r" refresh
    service:<service name, lowercased>:client_secret              a custom service's secret
    state:<OAuth state>                                           the PKCE code verifier

An authorization keeps its sealed tokens in the fields ``access`` and ``refresh``; the part
letters :data:`ACCESS` and :data:`REFRESH` appear only inside its labels.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final, Literal

from bot.vault import Sealed, Vault
from storage.records import Authorization, OAuthState, ServiceRecord

TokenPart = Literal["a", "r"]
ACCESS: Final = "a"
REFRESH: Final = "r"

SealedDoc = dict[str, object]


def authorization_aad(connection: str, user_id: str, part: TokenPart) -> str:
    return f"authorization:{connection}:{user_id}:{part}"


def client_secret_aad(service: str) -> str:
    return f"service:{service.lower()}:client_secret"


def state_aad(state: str) -> str:
    return f"state:{state}"


def sealed_parts(auth: Authorization) -> dict[TokenPart, Mapping[str, Any]]:
    """The sealed tokens ``auth`` holds, by part (a refresh token may be missing)."""
    parts: dict[TokenPart, Mapping[str, Any] | None] = {
        ACCESS: auth.access,
        REFRESH: auth.refresh,
    }
    return {part: doc for part, doc in parts.items() if doc is not None}


def seal_token(
    vault: Vault, connection: str, user_id: str, part: TokenPart, token: str
) -> SealedDoc:
    """``token`` sealed for one part of the authorization of ``user_id`` on ``connection``."""
    return vault.seal(token, aad=authorization_aad(connection, user_id, part)).to_doc()


def seal_tokens(
    vault: Vault, connection: str, user_id: str, access: str, refresh: str | None
) -> tuple[SealedDoc, SealedDoc | None]:
    """The access token and the refresh token (if any) sealed, for ``Authorizations``."""
    return (
        seal_token(vault, connection, user_id, ACCESS, access),
        seal_token(vault, connection, user_id, REFRESH, refresh) if refresh is not None else None,
    )


def open_token(
    vault: Vault, connection: str, user_id: str, part: TokenPart, sealed: Mapping[str, Any]
) -> str:
    aad = authorization_aad(connection, user_id, part)
    return vault.open(Sealed.from_doc(sealed), aad=aad)


def reseal_token(vault: Vault, auth: Authorization, part: TokenPart) -> SealedDoc:
    """One of ``auth``'s tokens sealed again under the primary key (key rotation)."""
    sealed = sealed_parts(auth)[part]
    aad = authorization_aad(auth.link, auth.user_id, part)
    return vault.reseal(Sealed.from_doc(sealed), aad=aad).to_doc()


def needs_rotation(vault: Vault, sealed: Mapping[str, Any]) -> bool:
    return vault.needs_rotation(Sealed.from_doc(sealed))


def seal_client_secret(vault: Vault, service: str, secret: str) -> SealedDoc:
    return vault.seal(secret, aad=client_secret_aad(service)).to_doc()


def open_client_secret(vault: Vault, record: ServiceRecord) -> str:
    sealed = Sealed.from_doc(record.client_secret_sealed)
    return vault.open(sealed, aad=client_secret_aad(record.name))


def reseal_client_secret(vault: Vault, record: ServiceRecord) -> SealedDoc:
    sealed = Sealed.from_doc(record.client_secret_sealed)
    return vault.reseal(sealed, aad=client_secret_aad(record.name)).to_doc()


def seal_verifier(vault: Vault, state: str, verifier: str) -> SealedDoc:
    return vault.seal(verifier, aad=state_aad(state)).to_doc()


def open_verifier(vault: Vault, state: OAuthState) -> str:
    return vault.open(Sealed.from_doc(state.verifier), aad=state_aad(state.state))
