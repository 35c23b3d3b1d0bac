"""Contracts shared by every service: key names, message models, settings, helpers."""
