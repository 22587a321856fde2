# A development version until the first release (PEP 440: 0.1.0.dev0 < 0.1.0).
__version__ = "0.1.0.dev0"
