"""Custom TFX components of rqvalue: feature-store ingestion and the data validation gate."""
