"""The driver side: what runs on the machine that starts a sweep (never imports a model)."""
