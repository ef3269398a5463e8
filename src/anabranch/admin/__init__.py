"""Admin HTTP endpoint: health, Prometheus metrics, stream descriptions (JSON) and a small HTML console."""
