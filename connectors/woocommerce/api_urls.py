"""WooCommerce-specific REST endpoints. Mounted at /api/woocommerce/."""

urlpatterns: list = []
