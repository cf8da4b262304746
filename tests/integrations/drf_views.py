"""Django REST framework views of the integration tests: token and JWT authentication, permissions, throttling."""

from rest_framework.authentication import TokenAuthentication
from rest_framework.permissions import IsAdminUser, IsAuthenticated
from rest_framework.response import Response
from rest_framework.throttling import AnonRateThrottle
from rest_framework.views import APIView
from rest_framework_simplejwt.authentication import JWTAuthentication

from rail_django.security import EventType, security


class WhoAmI(APIView):
    """Emits an event with no ``bind_actor``: its actor must be the DRF user."""

    authentication_classes = [TokenAuthentication, JWTAuthentication]
    permission_classes = [IsAuthenticated]

    def get(self, request):
        event = security.emit(EventType.DATA_READ, action="Read own profile", resource_type="profile")
        return Response({"user": request.user.get_username(), "event_user": event.username})


class AdminsOnly(APIView):
    authentication_classes = [TokenAuthentication, JWTAuthentication]
    permission_classes = [IsAdminUser]

    def get(self, request):
        return Response({"ok": True})


class TwoPerMinute(AnonRateThrottle):
    rate = "2/minute"


class Throttled(APIView):
    authentication_classes = []
    permission_classes = []
    throttle_classes = [TwoPerMinute]

    def get(self, request):
        return Response({"ok": True})
