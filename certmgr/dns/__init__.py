"""Publishing in DNS zones certmgr may update: TLSA rollover and MTA-STS ids.

``publisher`` is the seam to the ``[dns.NAME]`` providers (entry-point group
``certmgr.dns``); the policy modules here are pure and take ``now``.
"""
