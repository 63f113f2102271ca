"""The one settings object: read from the environment and `.env`, typed, validated at start-up.

Names follow the seed system's README (PORT, MODEL_DIR, ALLOW_ORIGINS, ...) so existing `.env`
files keep working. A bad value stops start-up with one line naming the variable.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

PROJECT_ROOT = Path(__file__).resolve().parent.parent
SAMPLE_DATA_FILE = PROJECT_ROOT / "sample_data" / "sample_customer_database_5000_singapore.xlsx"


class SettingsError(SystemExit):
    """Start-up stops with one readable line; SystemExit so no traceback is printed."""


class Settings(BaseSettings):
    """Every knob of the service. Field names are the environment variable names, case-insensitive."""

    model_config = SettingsConfigDict(env_file=".env", env_file_encoding="utf-8", extra="ignore", env_ignore_empty=True,
                                      case_sensitive=False)

    # Serving
    port: int = Field(5000, ge=1, le=65535, description="HTTP port for `python app.py` and `make run`.")
    flask_env: Literal["development", "production", "testing"] = "production"
    flask_debug: bool = False
    web_concurrency: int = Field(2, ge=1, le=64, description="gunicorn workers under `make run`.")
    gunicorn_timeout_s: int = Field(120, ge=10, le=3600,
                                    description="gunicorn worker timeout; LLM and upload budgets fit inside it.")
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] = "INFO"
    log_format: Literal["text", "json"] = "text"
    allow_origins: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: ["http://localhost:4200", "http://127.0.0.1:4200"],
        description="Comma-separated origins allowed by CORS.")

    # Content generation
    openai_api_key: SecretStr | None = Field(None, description="Unset: the offline generator serves.")
    openai_model: str = "gpt-4o-mini"
    openai_base_url: str | None = Field(None, description="Any OpenAI-compatible server (Azure, vLLM, Ollama).")
    openai_timeout_s: float = Field(20.0, gt=0, le=600)
    openai_max_retries: int = Field(2, ge=0, le=10)
    openai_max_completion_tokens: int = Field(900, ge=64, le=16000)
    openai_image_model: str = "dall-e-3"
    generate_images: bool = False
    generation_concurrency: int = Field(8, ge=1, le=64, description="Parallel LLM calls per request.")
    cache_ttl_s: int = Field(3600, ge=0, description="0 disables the content cache.")
    redis_url: str | None = Field(None, description="One Redis for every worker and host: scheduler lease, run "
                                                    "lock, retrain status, rate limits, content cache. Unset: "
                                                    "one host, file locks, per-process limits.")
    redis_timeout_s: float = Field(0.5, gt=0, le=10, description="Connect and socket timeout of every Redis call.")
    brand_profile_path: Path | None = Field(None, description="Optional brand voice JSON file.")
    rate_limit_per_minute: int = Field(0, ge=0, description="Per-client limit on generation routes; 0 = off.")
    rate_limit_upload_per_minute: int | None = Field(None, ge=0, description="Per-client limit on POST "
                                                     "/upload-excel; unset = RATE_LIMIT_PER_MINUTE; 0 = off.")
    rate_limit_admin_per_minute: int = Field(0, ge=0, description="Per-client limit on /admin/*; 0 = off.")
    rate_limit_fail_open: bool = Field(True, description="Redis unreachable: true serves without limits, "
                                                         "false answers 503 on limited routes.")
    trusted_proxies: int = Field(0, ge=0, le=10, description="Proxies in front that set X-Forwarded-For; 0 = "
                                                             "the peer address is the client.")

    # Data and models
    model_dir: Path = Field(Path("./model"), description="The live release (a pointer into PRODUCTION_MODELS_DIR).")
    persona_path: Path | None = Field(None, description="Personas file (default: MODEL_DIR/cluster_personas.pkl, "
                                                        "the live release's own); outside the release it "
                                                        "overrides persona names, summaries, tones and angles.")
    production_models_dir: Path = Path("./production_models")
    upload_dir: Path = Path("./uploads")
    base_data_dir: Path = Path("./base_data")
    sample_data_path: Path = SAMPLE_DATA_FILE
    max_upload_mb: int = Field(20, ge=1, le=1024)
    max_upload_rows: int = Field(1_048_576, ge=1)
    snapshot_salt: SecretStr = Field(SecretStr("change-me"), description="Salt for hashed customer ids.")
    model_reload_interval_s: float = Field(2.0, gt=0, le=300,
                                           description="How often workers look for a new live release.")

    # Retraining
    retrain_enabled: bool = True
    retrain_cron: str = Field("0 2 1 1,4,7,10 *", description="Cron (min hour day month dow).")
    retrain_timezone: str = "Asia/Singapore"
    retrain_catchup_delay_s: int = Field(300, ge=0)
    retrain_keep_releases: int = Field(5, ge=1, le=100)
    retrain_max_noise_share: float = Field(0.25, gt=0, le=1)
    retrain_lease_s: float = Field(30.0, ge=3, le=600, description="With REDIS_URL: lease of the scheduler leader "
                                                                   "and the run lock, renewed every third of it.")
    admin_token: SecretStr | None = Field(None, description="Bearer token for /admin; unset disables /admin.")

    @field_validator("allow_origins", mode="before")
    @classmethod
    def _split_origins(cls, value: object) -> object:
        if isinstance(value, str):
            return [origin.strip() for origin in value.split(",") if origin.strip()]
        return value

    @field_validator("retrain_timezone")
    @classmethod
    def _known_timezone(cls, value: str) -> str:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError("must be an IANA timezone name such as Asia/Singapore") from None
        return value

    @field_validator("retrain_cron")
    @classmethod
    def _valid_cron(cls, value: str) -> str:
        from apscheduler.triggers.cron import CronTrigger

        try:
            CronTrigger.from_crontab(value)
        except ValueError as exc:
            raise ValueError(f"must be a 5-field crontab such as '0 2 1 1,4,7,10 *' ({exc})") from None
        return value

    @property
    def content_provider(self) -> Literal["openai", "offline"]:
        """Which generator serves: OpenAI when a key is set, else the offline one."""
        return "openai" if self.openai_api_key and self.openai_api_key.get_secret_value() else "offline"

    @property
    def personas_file(self) -> Path:
        """PERSONA_PATH, or the live release's personas under MODEL_DIR when it is unset."""
        return self.persona_path if self.persona_path is not None else self.model_dir / "cluster_personas.pkl"

    @property
    def max_upload_bytes(self) -> int:
        return self.max_upload_mb * 1024 * 1024


def load_settings(**overrides: Any) -> Settings:
    """Read settings, turning a validation failure into one line that names the variable."""
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        first = exc.errors()[0]
        name = str(first["loc"][0]).upper() if first["loc"] else "settings"
        message = first["msg"].removeprefix("Value error, ")
        raise SettingsError(f"Invalid setting {name}: {message}.") from None
