"""Real-shaped Cliq bodies (reference/cliq.md) that several test modules build on."""

from __future__ import annotations

from typing import Any

USER = {
    "id": "55501",
    "first_name": "Ana",
    "last_name": "Lima",
    "email": "ana@example.com",
    "admin": False,
    "organization_id": "9001",
    "zoho_user_id": "700001",
    "timezone": "UTC",
    "country": "us",
    "language": "en",
}
CHAT = {"id": "CT_1_55501-B2", "type": "bot", "title": "Files Bot", "owner": "55501"}
FILE_URL = "https://files.example/f-1?exp=1&sig=abc"


def message_body() -> dict[str, Any]:
    return {
        "name": "Files Bot",
        "unique_name": "filesbot",
        "type": "bot",
        "handler": {"type": "message_handler"},
        "response_url": "https://cliq.example/v2/extensions/1/responses/99",
        "timestamp": 1764300000000,
        "params": {
            "user": dict(USER),
            "chat": dict(CHAT),
            "message": "quarterly report",
            "raw_message": "quarterly report",
            "message_details": {
                "time": 1764300000000,
                "message": {
                    "type": "attachment",
                    "comment": "quarterly report",
                    "file": {
                        "name": "q3.pdf",
                        "id": "f-1",
                        "type": "application/pdf",
                        "url": FILE_URL,
                    },
                },
            },
            "attachments": [
                {
                    "name": "q3.pdf",
                    "id": "f-1",
                    "url": FILE_URL,
                    "contenttype": "application/pdf",
                    "comment": "quarterly report",
                }
            ],
            "mentions": [],
            "links": [],
            "access": {"user_id": "700001", "chat_id": "CT_1_55501-B2"},
            "environment": {"tld": ".com", "data_center": "US"},
        },
    }
