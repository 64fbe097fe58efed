"""Install a certificate on its MTAs, prove they serve it, roll back when they do not."""
