"""qdataset's Alembic environment (installed as ``qdataset._migrations``)."""
