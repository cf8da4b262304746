"""Public path of the GraphQL audit API; it is defined in :mod:`rail_django.read.graphql`."""

from rail_django.read.graphql import *  # noqa: F403  (the public names, re-exported)
from rail_django.read.graphql import __all__  # noqa: F401
