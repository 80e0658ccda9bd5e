from django.apps import AppConfig


class WooCommerceConfig(AppConfig):
    name = "connectors.woocommerce"
    label = "woocommerce"
    verbose_name = "WooCommerce"
