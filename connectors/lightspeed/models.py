# Models specific to Lightspeed (if any) live here, with migrations in this app.
