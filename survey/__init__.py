"""survey: measure email transport security (STARTTLS, TLS, certificates, MTA-STS, TLSRPT)."""

__version__ = "0.1.0"
