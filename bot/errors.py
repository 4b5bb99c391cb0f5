"""The one error hierarchy of cliqbot.

Every error the application raises on purpose is a :class:`BotError`. Driver and HTTP errors are
translated at the boundary (``raise StoreUnavailable(...) from exc``) so the layers above never
see ``pymongo`` or ``aiohttp`` exceptions. Errors carry data, not just text: the repositories in
``storage/`` raise errors holding what happened (``AlreadyExists("connection", "team")``), and the
words a user reads are built here, from those fields, in one place.

    BotError
    ├── ConfigError                 configuration is invalid; ``problems`` lists every one
    ├── StoreError                  the database
    │   ├── StoreUnavailable        MongoDB does not answer (webhook → 503, the sender retries);
    │   │                           ``cause`` names the driver error
    │   ├── MalformedRecord         a stored document cannot be read; ``kind``, ``key``,
    │   │                           ``problem``, ``set_aside_as`` (the state it was moved to)
    │   └── EmbeddedStoreError      the embedded server would not start, or died
    ├── RequestError                an inbound HTTP request is unacceptable
    │   ├── NotAuthentic            signature missing, wrong or stale (401)
    │   ├── PayloadTooLarge         body over ``limit`` bytes (413)
    │   └── BadPayload              malformed JSON or wrong shape (400); ``field`` names the part
    ├── ChatError                   a chat action cannot be done; the message is shown to the user
    │   ├── UsageError              malformed command; ``usage`` is shown with it
    │   ├── NotAllowed              an admin-only action by a non-admin
    │   ├── NotFound                unknown connection, service, link
    │   │   └── UnknownRecord       storage has no ``kind`` record with ``key``
    │   └── Conflict                the action breaks a rule ("revoke it first", "unpublish first")
    │       └── AlreadyExists       storage has a ``kind`` record with ``key`` already
    ├── OAuthError                  the OAuth dance failed
    │   ├── InvalidState            missing, unknown, reused or expired ``state`` (400 page)
    │   ├── LinkGone                used, unknown or expired connect link (410 page)
    │   ├── InvalidGrant            the provider rejected a code or refresh token
    │   └── OAuthProviderError      any other provider failure; ``status`` and ``error`` code
    ├── ProviderError               a call to a service's API failed
    │   ├── NotAuthorized           no usable authorization for the credential owner; ``link``
    │   │                           and ``user_id`` say which connection and whose (when known)
    │   ├── TokenExpired            401 expired_access_token (refresh once, retry)
    │   ├── InvalidToken            401 invalid_access_token / missing_scope
    │   ├── RateLimited             429; ``retry_after`` seconds
    │   ├── ServerError             5xx or a lost connection: retry with backoff
    │   ├── IncorrectOffset         upload session offset mismatch; ``correct_offset``
    │   ├── ContentHashMismatch     the provider's content hash differs from ours
    │   └── ApiError                any other 4xx; ``status``, ``summary``
    ├── VaultError                  a ciphertext cannot be decrypted (unknown key id, tampered)
    └── SourceError                 an attachment could not be downloaded (expired URL, too large)
        └── FileTooLarge            over ``BOT_MAX_FILE_BYTES``
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import ClassVar


class BotError(Exception):
    """Base of every error cliqbot raises on purpose."""


class ConfigError(BotError):
    def __init__(self, problems: Sequence[str]) -> None:
        self.problems = list(problems)
        super().__init__("; ".join(self.problems))


class StoreError(BotError):
    pass


class StoreUnavailable(StoreError):
    def __init__(self, cause: str) -> None:
        self.cause = cause
        super().__init__(f"the database is not answering ({cause})")


class MalformedRecord(StoreError):
    """``owner``: the chat user the record is about, when it still says (``""`` if not);
    ``label``: what they would call it (a file's name), when it still says."""

    def __init__(
        self,
        kind: str,
        key: str,
        problem: str,
        set_aside_as: str = "",
        *,
        owner: str = "",
        label: str = "",
    ) -> None:
        self.kind = kind
        self.key = key
        self.problem = problem
        self.set_aside_as = set_aside_as
        self.owner = owner
        self.label = label
        aside = f"; set aside as {set_aside_as}" if set_aside_as else ""
        super().__init__(f"{kind} {key} is malformed ({problem}){aside}")


class EmbeddedStoreError(StoreError):
    pass


class RequestError(BotError):
    status = 400


class NotAuthentic(RequestError):
    status = 401


class PayloadTooLarge(RequestError):
    status = 413

    def __init__(self, limit: int) -> None:
        self.limit = limit
        size = f"{limit // 2**20} MiB" if limit % 2**20 == 0 else f"{limit} bytes"
        super().__init__(f"the body is larger than {size}")


class BadPayload(RequestError):
    status = 400

    def __init__(self, message: str, field: str | None = None) -> None:
        self.field = field
        super().__init__(message)


class ChatError(BotError):
    """An action the user asked for cannot be done; ``str(err)`` is shown to them."""


class UsageError(ChatError):
    def __init__(self, message: str, usage: str = "") -> None:
        self.usage = usage
        super().__init__(message)


class NotAllowed(ChatError):
    pass


class NotFound(ChatError):
    pass


class Conflict(ChatError):
    pass


class _RecordError(ChatError):
    """An error storage raises about one record: its ``kind`` ("connection", "service") and
    ``key`` (a connection's link name, a service's name as typed). What users read is built
    here from those two, by kind."""

    _WORDING: ClassVar[Mapping[str, str]]
    _OTHER_KIND: ClassVar[str]

    def __init__(self, kind: str, key: str) -> None:
        self.kind = kind
        self.key = key
        super().__init__(self._WORDING.get(kind, self._OTHER_KIND).format(kind=kind, key=key))


class UnknownRecord(_RecordError, NotFound):
    _WORDING = {
        "connection": "There is no connection `{key}`. `list` shows yours.",
        "service": "The service `{key}` no longer exists.",
    }
    _OTHER_KIND = "There is no {kind} `{key}`."


class AlreadyExists(_RecordError, Conflict):
    _WORDING = {
        "connection": "A connection with the link name `{key}` exists already;"
        " choose another name.",
        "service": "A service named {key!r} exists already.",
    }
    _OTHER_KIND = "A {kind} `{key}` exists already."


class OAuthError(BotError):
    pass


class InvalidState(OAuthError):
    pass


class LinkGone(OAuthError):
    pass


class InvalidGrant(OAuthError):
    pass


class OAuthProviderError(OAuthError):
    def __init__(self, message: str, status: int = 0, error: str = "") -> None:
        self.status = status
        self.error = error
        super().__init__(message)


class ProviderError(BotError):
    pass


class NotAuthorized(ProviderError):
    """No usable authorization (never connected, revoked, refresh rejected). ``link`` names the
    connection and ``user_id`` whose credentials it needed, where the raiser knows them
    (``ctx.invoke`` always does): a handler that lets it propagate is answered with a connect
    prompt for ``link`` and its event is kept until then (CONTRACT §10)."""

    def __init__(self, message: str = "", *, link: str = "", user_id: str = "") -> None:
        self.link = link
        self.user_id = user_id
        super().__init__(message or (f"`{link}` is not connected" if link else "not authorized"))


class TokenExpired(ProviderError):
    pass


class InvalidToken(ProviderError):
    pass


class RateLimited(ProviderError):
    def __init__(self, retry_after: float, message: str = "rate limited") -> None:
        self.retry_after = retry_after
        super().__init__(f"{message} (retry after {retry_after:g} s)")


class ServerError(ProviderError):
    def __init__(self, message: str, status: int = 0) -> None:
        self.status = status
        super().__init__(message)


class IncorrectOffset(ProviderError):
    def __init__(self, correct_offset: int) -> None:
        self.correct_offset = correct_offset
        super().__init__(f"incorrect offset, provider expects {correct_offset}")


class ContentHashMismatch(ProviderError):
    pass


class ApiError(ProviderError):
    def __init__(self, message: str, status: int = 0, summary: str = "") -> None:
        self.status = status
        self.summary = summary
        super().__init__(message)


class VaultError(BotError):
    pass


class SourceError(BotError):
    pass


class FileTooLarge(SourceError):
    def __init__(self, limit: int) -> None:
        self.limit = limit
        super().__init__(f"the file is larger than the limit of {limit} bytes")
