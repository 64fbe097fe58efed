"""TLS monitoring: what share of real mail used TLS, at what trust level.

Pure parsers of MTA logs and TLS-RPT reports, an incremental collector with a
stored read position, and the aggregates the reports and alerts read.
"""
