"""Sensors: steps of the order that wait for something outside Airflow to happen."""

from __future__ import annotations
