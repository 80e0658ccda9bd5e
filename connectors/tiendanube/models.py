# Models specific to Tiendanube (if any) live here, with migrations in this app.
