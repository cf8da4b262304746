"""``SecurityConfig``: the resolved audit settings (defined in :mod:`rail_django.conf`)."""

from rail_django.conf import DEFAULTS, REGISTRY, SecurityConfig, get_config, read_setting

__all__ = ["DEFAULTS", "REGISTRY", "SecurityConfig", "get_config", "read_setting"]
