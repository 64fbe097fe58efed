"""Reading certmgr.toml: the TOML reader, the typed model and its validation."""
