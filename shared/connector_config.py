"""The settings of one connector, kept in ``connectors.config`` (JSONB).

The model refuses what a send would refuse later: budgets outside the range the rate limiter
accepts, and a sender the send path's address check refuses.
"""

from __future__ import annotations

import re
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from shared.addresses import check_address
from shared.errors import FieldsInvalid
from shared.rate_limit import MAX_LIMIT, ConnectorLimits

#: Defaults for a new connector: modest, so a misconfigured campaign cannot flood a new account.
DEFAULT_PER_HOUR = 1000
DEFAULT_PER_DAY = 10000
SECRET_FIELD = re.compile(r"key|secret|token|password|credential", re.IGNORECASE)
#: The name given to problems of the config as a whole (a secret-looking extra field).
WHOLE_CONFIG = "config"


def _within_limiter_range(value: int) -> int:
    if not 0 < value <= MAX_LIMIT:
        raise ValueError(f"must be a whole number from 1 to {MAX_LIMIT}")
    return value


Budget = Annotated[int, AfterValidator(_within_limiter_range)]


class ConnectorConfig(BaseModel):
    """Sender default and send budgets of a connector."""

    model_config = ConfigDict(extra="allow", frozen=True)

    default_from: Annotated[str, AfterValidator(check_address)] | None = None
    rate_limit_per_hour: Budget = Field(default=DEFAULT_PER_HOUR)
    rate_limit_per_day: Budget = Field(default=DEFAULT_PER_DAY)
    #: Tokens of each budget only transactional mail may use: bulk mail stops at the reserve.
    reserve_transactional_per_hour: int = Field(default=0, ge=0, strict=True)
    reserve_transactional_per_day: int = Field(default=0, ge=0, strict=True)

    @field_validator("rate_limit_per_day")
    @classmethod
    def _day_covers_hour(cls, value: int, info: ValidationInfo) -> int:
        per_hour = info.data.get("rate_limit_per_hour")  # absent when it was refused itself
        if per_hour is not None and value < per_hour:
            raise ValueError("must not be below rate_limit_per_hour")
        return value

    @field_validator("reserve_transactional_per_hour", "reserve_transactional_per_day")
    @classmethod
    def _reserve_leaves_room_for_bulk(cls, value: int, info: ValidationInfo) -> int:
        budget = info.data.get(str(info.field_name).replace("reserve_transactional", "rate_limit"))
        if budget is not None and value >= budget:
            raise ValueError(f"must be below its budget ({budget}): bulk mail needs at least one email")
        return value

    def limits(self) -> ConnectorLimits:
        """The budgets and reserves as the rate limiter takes them."""
        return ConnectorLimits(
            per_hour=self.rate_limit_per_hour,
            per_day=self.rate_limit_per_day,
            reserve_per_hour=self.reserve_transactional_per_hour,
            reserve_per_day=self.reserve_transactional_per_day,
        )

    @model_validator(mode="after")
    def _no_secrets_in_config(self) -> ConnectorConfig:
        # config is stored and audited in clear: a key there would leak. Keys go through set_api_key.
        leaked = sorted(name for name in self.model_extra or {} if SECRET_FIELD.search(name))
        if leaked:
            raise ValueError(
                f"config field(s) {', '.join(leaked)} look like secrets; store API keys with set-key"
            )
        return self


def parse_connector_config(config: dict[str, Any]) -> ConnectorConfig:
    """``config`` validated, or :class:`FieldsInvalid` naming every bad field (never its value)."""
    try:
        return ConnectorConfig.model_validate(config)
    except ValidationError as exc:
        problems: dict[str, str] = {}
        for error in exc.errors(include_input=False, include_url=False, include_context=False):
            field = ".".join(str(part) for part in error["loc"]) or WHOLE_CONFIG
            problems.setdefault(field, error["msg"].removeprefix("Value error, "))
        raise FieldsInvalid("invalid connector config", problems) from None
