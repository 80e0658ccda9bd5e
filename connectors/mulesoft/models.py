# Models specific to MuleSoft (if any) live here, with migrations in this app.
