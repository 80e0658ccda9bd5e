# Models specific to WooCommerce (if any) live here, with migrations in this app.
