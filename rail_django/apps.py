"""App configuration: connects the auth receivers and registers the system checks."""

from django.apps import AppConfig


class RailDjangoConfig(AppConfig):
    name = "rail_django"
    label = "rail_django"
    verbose_name = "Rail Django audit"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from django.contrib.auth import signals as auth_signals

        from rail_django import checks  # noqa: F401  (registers the checks)
        from rail_django.security import receivers

        auth_signals.user_logged_in.connect(receivers.on_user_logged_in, dispatch_uid="rail_django.login")
        auth_signals.user_logged_out.connect(receivers.on_user_logged_out, dispatch_uid="rail_django.logout")
        auth_signals.user_login_failed.connect(receivers.on_user_login_failed, dispatch_uid="rail_django.login_failed")
