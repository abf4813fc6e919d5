"""
The provider's ``[order_provider]`` settings, read with the defaults its provider info declares
(:func:`airflow_order_provider.get_provider_info.get_provider_info`): each default is written there
once.
"""

from __future__ import annotations

from functools import cache

from airflow_order_provider.version_compat import conf

CONFIG_SECTION = "order_provider"


@cache
def _defaults() -> dict[str, str]:
    from airflow_order_provider.get_provider_info import get_provider_info

    options = get_provider_info()["config"][CONFIG_SECTION]["options"]
    return {name: str(option.get("default") or "") for name, option in options.items()}


def option(name: str) -> str:
    """``[order_provider] name`` as set in this deployment, else its declared default ('' for none)."""
    return conf.get(CONFIG_SECTION, name, fallback=_defaults()[name]) or ""


def option_bool(name: str) -> bool:
    """A boolean option, spelt as Airflow's ``conf.getboolean`` accepts it (true/t/1, false/f/0)."""
    raw = option(name).strip().lower()
    if raw in ("true", "t", "1"):
        return True
    if raw in ("false", "f", "0"):
        return False
    raise ValueError(f"[{CONFIG_SECTION}] {name} must be True or False, got {raw!r}")


def time_scale() -> float:
    """Return ``[order_provider] time_scale`` (default 1.0); it must be a positive number."""
    raw = option("time_scale")
    try:
        value = float(raw)
    except ValueError:
        raise ValueError(f"[{CONFIG_SECTION}] time_scale must be a number, got {raw!r}") from None
    if value <= 0:
        raise ValueError(f"[{CONFIG_SECTION}] time_scale must be positive, got {value}")
    return value
