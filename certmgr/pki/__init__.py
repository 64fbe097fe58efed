"""Keys, CSRs, certificate facts, trust anchors and DNS names: the X.509 facts the rest reads."""
