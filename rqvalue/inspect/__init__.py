"""`rqvalue inspect`: what the runs of an output folder did and produced."""
