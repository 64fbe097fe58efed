"""DNS providers of ``[dns.NAME]`` tables: zones certmgr publishes records in."""
