"""The committee attendance processor: residents' emails in, registrations out."""

__version__ = "0.1.0"
