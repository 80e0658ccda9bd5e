# Models specific to MDM (if any) live here, with migrations in this app.
