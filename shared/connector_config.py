"""The settings of one connector, kept in ``connectors.config`` (JSONB)."""

from __future__ import annotations

import re

from pydantic import BaseModel, ConfigDict, Field, model_validator

#: Defaults for a new connector: modest, so a misconfigured campaign cannot flood a new account.
DEFAULT_PER_HOUR = 1000
DEFAULT_PER_DAY = 10000
SECRET_FIELD = re.compile(r"key|secret|token|password|credential", re.IGNORECASE)


class ConnectorConfig(BaseModel):
    """Sender default and send budgets of a connector."""

    model_config = ConfigDict(extra="allow", frozen=True)

    default_from: str | None = None
    rate_limit_per_hour: int = Field(default=DEFAULT_PER_HOUR, gt=0)
    rate_limit_per_day: int = Field(default=DEFAULT_PER_DAY, gt=0)

    @model_validator(mode="after")
    def _no_secrets_in_config(self) -> ConnectorConfig:
        # config is stored and audited in clear: a key there would leak. Keys go through set_api_key.
        leaked = sorted(name for name in self.model_extra or {} if SECRET_FIELD.search(name))
        if leaked:
            raise ValueError(
                f"config field(s) {', '.join(leaked)} look like secrets; store API keys with set-key"
            )
        return self

    @model_validator(mode="after")
    def _day_covers_hour(self) -> ConnectorConfig:
        if self.rate_limit_per_day < self.rate_limit_per_hour:
            raise ValueError("rate_limit_per_day must not be below rate_limit_per_hour")
        return self
