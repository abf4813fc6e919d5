"""
Harness pieces for distributed runs of Airflow (CeleryExecutor), beside ``airflow_harness.py``
(PostgreSQL databases, process groups, the REST client and the LocalExecutor deployment):

* :mod:`.topology`: what a distributed deployment consists of (components, their commands, the
  Celery settings, which worker consumes which queue). The top-level ``docker-compose.yaml`` and
  the distributed end-to-end test both follow it; ``tests/unit/test_compose.py`` checks the file.
* :mod:`.celery`: :class:`~tests.integration.harness.celery.CeleryDeployment`, that topology as
  local processes on 127.0.0.1 (Redis broker, PostgreSQL metadata and result backend).
"""
