"""Configuration: one pydantic-settings model (env vars ``TETHER_*``, optional ``tether.toml``)."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import platformdirs
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict, TomlConfigSettingsSource

APP = "tether"


def data_dir() -> Path:
    """The user data dir (SQLite store, checkpoints), created on demand."""
    path = Path(platformdirs.user_data_dir(APP))
    path.mkdir(parents=True, exist_ok=True)
    return path


def cache_dir() -> Path:
    """The user cache dir (converted models, wheels), created on demand."""
    path = Path(platformdirs.user_cache_dir(APP))
    path.mkdir(parents=True, exist_ok=True)
    return path


class Settings(BaseSettings):
    """tether's settings. Every field can be set as ``TETHER_<NAME>`` or in ``tether.toml``."""

    model_config = SettingsConfigDict(env_prefix="TETHER_", toml_file="tether.toml", extra="ignore")

    db_url: str | None = None
    model: str = "local"
    sandbox_backend: str = "bwrap"
    max_turns: int = 8
    max_new_tokens: int = 2048
    max_tokens_per_turn: int = 256
    wall_time_s: float = 300.0
    temperature: float = 0.0
    #: tune the cyclic garbage collector when an agent opens (see ``tether.runtime.tune_gc``)
    gc_tuning: bool = True

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings, env_settings, TomlConfigSettingsSource(settings_cls))

    def resolved_db_url(self) -> str:
        """The database URL: ``db_url`` or the SQLite file in the data dir."""
        return self.db_url or f"sqlite+aiosqlite:///{data_dir() / 'tether.db'}"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings."""
    return Settings()
