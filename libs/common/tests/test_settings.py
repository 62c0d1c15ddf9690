from __future__ import annotations

import pytest
from fabula_common.db import create_engine
from fabula_common.settings import (
    CommonSettings,
    ServiceSettings,
    TokenSettings,
    normalise_database_url,
)
from pydantic import ValidationError
from pydantic_settings import SettingsConfigDict
from sqlalchemy.engine import make_url


class ExampleSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="EXAMPLE_")
    database_url: str = "postgresql://example:example@127.0.0.1:5432/fabula"
    grpc_port: int = 50099


@pytest.mark.parametrize(
    "given",
    ["postgres://u:p@db.example.com:6543/app", "postgresql://u:p@db.example.com:6543/app",
     "postgresql+asyncpg://u:p@db.example.com:6543/app"],
)
def test_database_urls_are_normalised_for_asyncpg(given):
    url = make_url(normalise_database_url(given))
    assert url.drivername == "postgresql+asyncpg"
    assert (url.host, url.port, url.database, url.username) == ("db.example.com", 6543, "app", "u")


def test_sslmode_require_is_passed_to_asyncpg():
    url = normalise_database_url("postgres://u:p@h/app?sslmode=require")
    assert make_url(url).query == {"ssl": "require"}


def test_other_schemes_are_refused():
    with pytest.raises(ValueError):
        normalise_database_url("mysql://u:p@h/app")


def test_service_variables_carry_the_service_prefix(monkeypatch):
    monkeypatch.setenv("EXAMPLE_DATABASE_URL", "postgres://a:b@h:1/x")
    monkeypatch.setenv("EXAMPLE_GRPC_PORT", "6001")
    monkeypatch.setenv("DB_POOL_SIZE", "17")
    monkeypatch.setenv("NATS_URL", "nats://n:4222")
    settings = ExampleSettings()
    assert settings.database_url == "postgresql+asyncpg://a:b@h:1/x"
    assert (settings.grpc_port, settings.db_pool_size, settings.nats_url) == (6001, 17, "nats://n:4222")


def test_pool_settings_reach_the_engine(monkeypatch):
    monkeypatch.setenv("DB_POOL_SIZE", "3")
    monkeypatch.setenv("DB_MAX_OVERFLOW", "4")
    engine = create_engine(ExampleSettings(database_url="postgres://u:p@h/app?sslmode=require"))
    assert engine.pool.size() == 3 and engine.pool._max_overflow == 4
    assert "ssl" not in engine.url.query


def test_production_refuses_the_default_secret(monkeypatch):
    monkeypatch.setenv("FABULA_ENV", "production")
    with pytest.raises(SystemExit, match="JWT_SECRET"):
        TokenSettings().check_production_ready()
    monkeypatch.setenv("JWT_SECRET", "a-real-secret-from-the-vault")
    TokenSettings().check_production_ready()


@pytest.mark.parametrize("secret", ["", "   "])
def test_an_empty_signing_key_is_refused_in_every_environment(monkeypatch, secret):
    monkeypatch.setenv("FABULA_ENV", "development")
    monkeypatch.setenv("JWT_SECRET", secret)
    with pytest.raises(ValidationError, match="JWT_SECRET"):
        TokenSettings()


def test_processes_without_tokens_need_no_signing_key(monkeypatch):
    monkeypatch.setenv("FABULA_ENV", "production")
    monkeypatch.delenv("JWT_SECRET", raising=False)
    CommonSettings().check_production_ready()
    assert not hasattr(ExampleSettings(), "jwt_secret")


def test_development_accepts_the_default_secret(monkeypatch):
    monkeypatch.setenv("FABULA_ENV", "development")
    TokenSettings().check_production_ready()
