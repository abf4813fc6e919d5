"""Apache Airflow provider for a centrally orchestrated e-commerce order process."""

from __future__ import annotations

__version__ = "0.1.0"
