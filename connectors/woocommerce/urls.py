"""Routes where WooCommerce calls us (webhooks, OAuth callbacks). Mounted at /connectors/woocommerce/."""

urlpatterns: list = []
