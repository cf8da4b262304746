"""Public paths of the stored model and the GraphQL read API (``.models``, ``.graphql``, ``.admin``).

The code lives in :mod:`rail_django.models` and :mod:`rail_django.read`.
"""
