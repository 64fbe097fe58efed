"""One certificate's life: when to renew, issuance, versions, manual import, revocation, recovery."""
