from __future__ import annotations

from pathlib import Path

import pytest

from bot.config import load_environment, load_settings, serve_problems
from bot.errors import ConfigError
from tests.conftest import make_key


def test_defaults_match_the_contract() -> None:
    s = load_settings({})
    assert (s.host, s.port, s.mongodb_db, s.command_name) == (
        "127.0.0.1",
        8080,
        "cliqbot",
        "connection",
    )
    assert s.base_url() == "http://127.0.0.1:8080"
    assert s.upload_folder == "/Cliq Uploads"
    assert s.max_file_bytes == 2147483648
    assert s.connect_link_ttl == 600
    assert s.verify_linking is False
    assert s.mongodb_uri is None
    assert s.cliq_function.action_data() == {"name": "cliqbot"}


def test_the_cliq_function_for_buttons() -> None:
    s = load_settings({"CLIQ_FUNCTION_NAME": "filesbot_clicks", "CLIQ_FUNCTION_OWNER": "a@b.io"})
    assert s.cliq_function.action_data() == {"name": "filesbot_clicks", "owner": "a@b.io"}
    with pytest.raises(ConfigError) as info:
        load_settings({"CLIQ_FUNCTION_NAME": "two words", "CLIQ_FUNCTION_OWNER": "nobody"})
    names = [p.split(":")[0] for p in info.value.problems]
    assert names == ["CLIQ_FUNCTION_NAME", "CLIQ_FUNCTION_OWNER"]


def test_every_bad_variable_is_reported_together_by_name() -> None:
    with pytest.raises(ConfigError) as info:
        load_settings(
            {
                "BOT_PORT": "eighty",
                "BOT_PUBLIC_URL": "ftp://x",
                "MONGODB_URI": "postgres://nope",
                "BOT_VERIFY_LINKING": "maybe",
                "BOT_LOG_FORMAT": "xml",
                "BOT_ENCRYPTION_KEYS": "dG9vLXNob3J0",
                "DROPBOX_APP_KEY": "k",
            }
        )
    names = [p.split(":")[0] for p in info.value.problems]
    for name in (
        "BOT_PORT",
        "BOT_PUBLIC_URL",
        "MONGODB_URI",
        "BOT_VERIFY_LINKING",
        "BOT_LOG_FORMAT",
        "BOT_ENCRYPTION_KEYS",
        "DROPBOX_APP_KEY / DROPBOX_APP_SECRET",
    ):
        assert name in names


def test_secrets_never_appear_in_errors_or_repr() -> None:
    secret_uri = "mongodb://user:hunter2hunter2@db.example"
    s = load_settings(
        {
            "MONGODB_URI": secret_uri,
            "BOT_WEBHOOK_SECRET": "s3cr3t-webhook",
            "DROPBOX_APP_KEY": "key",
            "DROPBOX_APP_SECRET": "s3cr3t-app",
            "CLIQ_WEBHOOK_TOKEN": "s3cr3t-zapi",
            "BOT_ENCRYPTION_KEYS": make_key(),
        }
    )
    text = repr(s) + str(s)
    for secret in ("hunter2", "s3cr3t-webhook", "s3cr3t-app", "s3cr3t-zapi"):
        assert secret not in text
    with pytest.raises(ConfigError) as info:
        load_settings({"BOT_ENCRYPTION_KEYS": "not-a-key-s3cr3t"})
    assert "s3cr3t" not in str(info.value)


def test_dotenv_is_read_and_real_environment_wins(tmp_path: Path) -> None:
    dotenv = tmp_path / ".env"
    dotenv.write_text("BOT_PORT=9000\nMONGODB_DB=fromfile\n")
    env = load_environment({"BOT_PORT": "9100"}, dotenv)
    s = load_settings(env)
    assert s.port == 9100
    assert s.mongodb_db == "fromfile"


def test_serve_needs_an_inbound_authentication_method() -> None:
    assert serve_problems(load_settings({})) != []
    assert serve_problems(load_settings({"BOT_WEBHOOK_SECRET": "x"})) == []


def test_public_key_file_must_hold_an_rsa_key(tmp_path: Path) -> None:
    bad = tmp_path / "key.pem"
    bad.write_text("not a key")
    with pytest.raises(ConfigError) as info:
        load_settings({"CLIQ_PUBLIC_KEY_FILE": str(bad)})
    assert info.value.problems == ["CLIQ_PUBLIC_KEY_FILE: not a PEM public key"]


def test_urls_and_admins_read_the_same_way_for_every_variable() -> None:
    s = load_settings(
        {
            "CLIQ_API_BASE": "https://cliq.zoho.eu/api/v2/",
            "DROPBOX_API_URL": "http://127.0.0.1:9000/",
            "BOT_ADMINS": " Ada@Example.com, 1001 ,,",
        }
    )
    assert s.cliq_api_base == "https://cliq.zoho.eu/api/v2"  # the trailing slash dropped
    assert s.dropbox_api_url == "http://127.0.0.1:9000"
    assert s.dropbox_content_url == "https://content.dropboxapi.com"  # the default
    assert s.admins == frozenset({"ada@example.com", "1001"})
    urls = ("CLIQ_API_BASE", "DROPBOX_AUTHORIZE_URL", "DROPBOX_API_URL", "DROPBOX_CONTENT_URL")
    with pytest.raises(ConfigError) as info:
        load_settings(dict.fromkeys(urls, "not a url"))
    assert info.value.problems == [
        f"{name}: must be an http(s) URL (got 'not a url')" for name in urls
    ]
