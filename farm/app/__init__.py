"""The application layer: the use cases, over the ports their adapters implement."""
