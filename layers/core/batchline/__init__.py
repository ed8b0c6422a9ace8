"""Batchline's shared core: models, validation, storage, providers, errors and configuration."""
