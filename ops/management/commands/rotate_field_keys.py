"""Re-encrypt every stored secret with the newest FIELD_ENCRYPTION_KEYS key (step 3 of the rotation in
docs/deploy.md). Finds the encrypted columns by name (``*_encrypted`` text fields, any app), so a new
connector's secrets are covered without an edit here. Row by row under a row lock: a token refresh that
writes new credentials meanwhile is waited for, never overwritten with the old value."""

from __future__ import annotations

from django.apps import apps
from django.core.management import BaseCommand
from django.db import models, transaction

from core import crypto


def encrypted_columns() -> list[tuple[type[models.Model], str]]:
    return [
        (model, field.name)
        for model in apps.get_models()
        for field in model._meta.concrete_fields
        if isinstance(field, models.TextField) and field.name.endswith("_encrypted")
    ]


class Command(BaseCommand):
    help = "Re-encrypt stored secrets with the newest FIELD_ENCRYPTION_KEYS key (run after adding a key)."

    def handle(self, *args, **options) -> None:
        total = 0
        for model, field in encrypted_columns():
            done = 0
            pks = model.objects.exclude(**{field: ""}).values_list("pk", flat=True).order_by("pk")
            for pk in pks.iterator(chunk_size=500):
                with transaction.atomic():
                    row = model.objects.select_for_update().filter(pk=pk).values_list(field, flat=True).first()
                    if not row:
                        continue
                    rotated = crypto.rotate(row)
                    if rotated != row:
                        model.objects.filter(pk=pk).update(**{field: rotated})
                        done += 1
            self.stdout.write(f"{model._meta.label}.{field}: {done} re-encrypted")
            total += done
        self.stdout.write(f"{total} secret(s) re-encrypted with the newest key; older keys can now be removed")
