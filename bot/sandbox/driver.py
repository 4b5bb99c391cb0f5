"""A scripted chat client: builds Cliq-shaped events, signs them, and clicks through consent.

Used by the tests, ``cliqbot demo --self-test``, the chat emulator's server side, and the
benchmarks. It speaks only HTTP to the bot and the stand-ins, exactly as Cliq and a browser do.
"""

from __future__ import annotations

import itertools
import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from html import unescape
from typing import Any
from urllib.parse import urljoin

import aiohttp

from bot.cliq.signing import hmac_signature


@dataclass(frozen=True)
class ChatUser:
    id: str
    email: str
    first_name: str
    last_name: str = ""
    admin: bool = False

    def payload(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "email": self.email,
            "first_name": self.first_name,
            "last_name": self.last_name,
            "admin": self.admin,
            "organization_id": "9001",
            "zoho_user_id": f"7{self.id}",
        }


@dataclass(frozen=True)
class Reply:
    status: int
    body: dict[str, Any]

    @property
    def output(self) -> dict[str, Any]:
        out: dict[str, Any] = self.body.get("output", {})
        return out

    @property
    def text(self) -> str:
        return str(self.output.get("text", ""))

    def button_url(self) -> str | None:
        for button in self.output.get("buttons", []):
            action = button.get("action", {})
            if action.get("type") == "open.url":
                return str(action["data"]["web"])
        return None


_FORM_INPUT = re.compile(r'<input type="hidden" name="([^"]+)" value="([^"]*)"')


class ChatDriver:
    def __init__(
        self,
        http: aiohttp.ClientSession,
        bot_url: str,
        secret: str,
        *,
        bot_name: str = "filesbot",
        command: str = "connection",
    ) -> None:
        self.http = http
        self.bot_url = bot_url.rstrip("/")
        self.secret = secret
        self.bot_name = bot_name
        self.command = command
        self._clock = itertools.count(int(time.time() * 1000))

    # -- events --

    def _base(self, user: ChatUser, kind: str, handler: str, name: str) -> dict[str, Any]:
        return {
            "name": name,
            "unique_name": name.lower(),
            "type": kind,
            "handler": {"type": handler},
            "response_url": f"https://cliq.example/v2/extensions/1/responses/{next(self._clock)}",
            "timestamp": next(self._clock),
            "params": {
                "user": user.payload(),
                "chat": {"id": f"CT_1_{user.id}-B2", "type": "bot", "title": self.bot_name},
            },
        }

    def message(
        self, user: ChatUser, text: str = "", attachments: Sequence[Mapping[str, str]] = ()
    ) -> dict[str, Any]:
        body = self._base(user, "bot", "message_handler", self.bot_name)
        params = body["params"]
        params["message"] = text
        params["message_details"] = {"time": body["timestamp"], "message": {"text": text}}
        if attachments:
            params["attachments"] = [
                {"comment": text, **{k: str(v) for k, v in a.items()}} for a in attachments
            ]
        return body

    def welcome(self, user: ChatUser) -> dict[str, Any]:
        body = self._base(user, "bot", "welcome_handler", self.bot_name)
        body["params"]["newuser"] = True
        return body

    def mention(self, user: ChatUser, text: str) -> dict[str, Any]:
        body = self._base(user, "bot", "mention_handler", self.bot_name)
        body["params"]["message"] = text
        return body

    def command_event(self, user: ChatUser, arguments: str) -> dict[str, Any]:
        body = self._base(user, "command", "execution_handler", self.command)
        body["params"].update({"arguments": arguments, "options": {}})
        return body

    def button(self, user: ChatUser, key: str, *, label: str = "") -> dict[str, Any]:
        """A click as Cliq sends it: only the button's ``key`` comes back (reference/cliq.md)."""
        body = self._base(user, "function", "button_handler", "cliqbot")
        body["params"].update(
            {
                "target": {"name": label or "button", "hint": ""},
                "event": "click",
                "arguments": {"key": key},
            }
        )
        return body

    # -- delivery --

    async def post(self, body: Mapping[str, Any] | bytes, **headers: str) -> Reply:
        raw = body if isinstance(body, bytes) else _dumps(body)
        ts = str(int(time.time()))
        signed = {
            "Content-Type": "application/json",
            "X-Bot-Timestamp": ts,
            "X-Bot-Signature": hmac_signature(self.secret, ts, raw),
        }
        signed.update(headers)
        async with self.http.post(f"{self.bot_url}/cliq/webhook", data=raw, headers=signed) as r:
            data = await r.json(content_type=None)
            return Reply(r.status, data if isinstance(data, dict) else {})

    async def say(self, user: ChatUser, text: str) -> Reply:
        return await self.post(self.message(user, text))

    async def run(self, user: ChatUser, arguments: str) -> Reply:
        return await self.post(self.command_event(user, arguments))

    async def send_files(self, user: ChatUser, attachments: Sequence[Mapping[str, str]]) -> Reply:
        return await self.post(self.message(user, "", attachments))

    # -- a browser's part of OAuth --

    async def consent(self, connect_url: str, email: str, *, allow: bool = True) -> tuple[int, str]:
        """Open a connect link, pick ``email`` on the consent page, follow back to the bot."""
        async with self.http.get(connect_url, allow_redirects=False) as resp:
            if resp.status != 302:
                return resp.status, await resp.text()
            authorize = resp.headers["Location"]
        async with self.http.get(authorize) as resp:
            page = await resp.text()
            if resp.status != 200:
                return resp.status, page
            form_url = urljoin(str(resp.url), "/oauth2/authorize/decide")
        fields = {name: unescape(value) for name, value in _FORM_INPUT.findall(page)}
        fields.update({"email": email, "decision": "allow" if allow else "deny"})
        async with self.http.post(form_url, data=fields, allow_redirects=False) as resp:
            callback = resp.headers.get("Location", "")
            if resp.status != 302 or not callback:
                return resp.status, await resp.text()
        async with self.http.get(callback) as resp:
            return resp.status, await resp.text()


def _dumps(body: Mapping[str, Any]) -> bytes:
    import json

    return json.dumps(body, separators=(",", ":")).encode()
