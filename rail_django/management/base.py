"""What rail-django's commands share: one-line errors for bad flags, and a flush at the end."""

from __future__ import annotations

from argparse import ArgumentTypeError
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from rail_django.security import security, use_context


class OneLineErrorParser(CommandParser):
    """A parser whose errors are one line (no usage block), with a non-zero exit."""

    def error(self, message: str) -> None:  # type: ignore[override]
        if self.called_from_command_line:
            self.exit(2, f"{self.prog}: error: {message} (see --help)\n")
        raise CommandError(f"Error: {message}")


class AuditCommand(BaseCommand):
    """Base of rail-django's commands: one-line flag errors, its own audit context, ``security.flush()`` at the end."""

    def create_parser(self, prog_name: str, subcommand: str, **kwargs: Any) -> CommandParser:
        """Django's parser (every standard option, this command's own), parsed by a :class:`OneLineErrorParser`.

        argparse's documented ``parents=`` copies Django's arguments into the
        one-line parser; a command's sub-commands get the same class through
        ``add_subparsers(parser_class=OneLineErrorParser)``.
        """
        django_parser = super().create_parser(prog_name, subcommand, **kwargs)
        return OneLineErrorParser(
            prog=django_parser.prog,
            description=django_parser.description,
            formatter_class=django_parser.formatter_class,
            missing_args_message=django_parser.missing_args_message,
            called_from_command_line=django_parser.called_from_command_line,
            parents=[django_parser],
            add_help=False,  # the parent's -h/--help is copied with the rest
        )

    def execute(self, *args: Any, **options: Any) -> Any:
        # One correlation id for every event the run records.
        with use_context():
            try:
                return super().execute(*args, **options)
            finally:
                security.flush()


def positive_int(text: str) -> int:
    """argparse type: a whole number >= 1."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise ArgumentTypeError(f"{text!r} is not a whole number >= 1")
    return value
