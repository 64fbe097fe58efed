"""Practice 5: TLS to partner domains.

``model`` holds what a partner is and what was found; ``discover`` asks DNS (MX,
addresses, DNSSEC-validated TLSA, MTA-STS and TLS-RPT records); ``mtasts`` fetches
and reads MTA-STS policies; ``assess`` decides, purely, whether each MX address
meets the level the partner requires; ``check`` runs it all with bounded
concurrency; ``policymap`` turns verdicts into the MTA's TLS policy map.
"""
