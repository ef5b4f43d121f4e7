"""Feast feature repository of the embedded data sets: feature_store.yaml and the definitions."""
