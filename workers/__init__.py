"""Worker side: Celery app factory, the task, the measuring loop, backends, host probe.

torch and friends are imported lazily, inside the backend that needs them.
"""
