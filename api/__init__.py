"""Thin FastAPI query layer over the Postgres projections."""
