"""Feature keys, curated TFDV schemas and the Feast feature repository of rqvalue."""
