"""Migrations of the bookmarks app."""
