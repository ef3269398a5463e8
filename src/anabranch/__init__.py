"""Anabranch: durable, elastic stream storage that speaks Pravega's protocols."""

__version__ = "0.1.0"
