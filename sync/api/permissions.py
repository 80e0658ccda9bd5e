"""Staff-only access, scoped to the caller's organizations. Reusable by every /api/ view:

    from sync.api.permissions import IsStaff, OrganizationScoped
    permission_classes = [IsStaff, OrganizationScoped]

and build ``get_queryset()`` from a ``sync.selectors`` function (lists are filtered there; the object
check below is the second line of defence for detail views). A miss is always 404, never 403.
"""

from __future__ import annotations

from django.http import Http404
from rest_framework.permissions import BasePermission

from sync.selectors import organization_ids_for


class IsStaff(BasePermission):
    """Authenticated, active staff users only (DRF's IsAdminUser, with a message a person can act on)."""

    message = "Staff access required: sign in with a staff account or send 'Authorization: Token <key>'."

    def has_permission(self, request, view) -> bool:
        user = request.user
        return bool(user and user.is_authenticated and user.is_active and user.is_staff)


class OrganizationScoped(BasePermission):
    """Object check: the object's organization must be one of the caller's. Raises 404 (not 403) so that
    another organization's ids are indistinguishable from ids that do not exist."""

    def has_permission(self, request, view) -> bool:
        return True

    def has_object_permission(self, request, view, obj) -> bool:
        ids = organization_ids_for(request.user)
        if ids is None:
            return True
        org_id = getattr(obj, "organization_id", None)
        if org_id is None or org_id not in ids:
            raise Http404
        return True
