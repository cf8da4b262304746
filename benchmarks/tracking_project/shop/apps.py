from django.apps import AppConfig


class ShopConfig(AppConfig):
    name = "benchmarks.tracking_project.shop"
    label = "shop"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from django.conf import settings

        if settings.VARIANT == "auditlog":
            from auditlog.registry import auditlog

            from benchmarks.tracking_project.shop.models import Invoice

            auditlog.register(Invoice)
