"""Farm: a distributed benchmark farm for transformer inference on CPUs.

The core package holds pure logic (matrix, jobs, statistics, settings, errors) and
imports neither Redis, Celery, SQLAlchemy nor torch, so the laptop CLI stays light.
"""

__version__ = "0.1.0"

# Version of the broker message layout; a worker refuses messages of another version.
MESSAGE_SCHEMA = 1
