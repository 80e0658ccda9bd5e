"""SystemSetting writes (global or per organization; read through sync.selectors)."""

from __future__ import annotations

from ..models import SystemSetting


def setting_set(*, key: str, value, organization=None, description: str = "") -> SystemSetting:
    obj, _ = SystemSetting.objects.update_or_create(
        organization=organization,
        key=key,
        defaults={"value": value, **({"description": description} if description else {})},
    )
    return obj
