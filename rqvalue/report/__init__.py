"""`rqvalue report`: one self-contained HTML page about a run's evaluation (gather -> render -> charts)."""
