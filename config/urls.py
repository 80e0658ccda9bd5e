from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

# The admin is SyncHub's operations console: say so in the header and the browser tab.
admin.site.site_header = "SyncHub"
admin.site.site_title = "SyncHub"
admin.site.index_title = "Operations console"

CONNECTOR_KINDS = ["woocommerce", "lightspeed", "tiendanube", "mulesoft", "mdm"]

urlpatterns = [
    path("admin/", admin.site.urls),
    path("", include("ops.urls")),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="api-docs"),
    path("api/", include("sync.api.urls")),
    path("api/", include("customers.api_urls")),
]
for kind in CONNECTOR_KINDS:
    urlpatterns += [
        path(f"connectors/{kind}/", include(f"connectors.{kind}.urls")),
        path(f"api/{kind}/", include(f"connectors.{kind}.api_urls")),
    ]

# JSON error pages for /api/ (Django's own pages elsewhere); see sync/api/exceptions.py.
handler400 = "sync.api.exceptions.handler400"
handler403 = "sync.api.exceptions.handler403"
handler404 = "sync.api.exceptions.handler404"
handler500 = "sync.api.exceptions.handler500"
